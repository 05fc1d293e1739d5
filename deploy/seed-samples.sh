#!/usr/bin/env bash
# One-shot seeding of the two sample department servers with `datacloud sample`:
# every sample department into PostgreSQL (dept-postgres) and into MariaDB (dept-mariadb),
# one database per department (dc_<dept>). The connections in docker-compose.yml read
# gongan, bdc and gjj from PostgreSQL and scjg and mz from MariaDB.
# Idempotent: `datacloud sample` drops and recreates the sample tables, same seed, same rows.
set -euo pipefail

: "${DEPT_PG_PASSWORD:?}" "${DEPT_MARIADB_PASSWORD:?}"
persons="${SAMPLE_PERSONS:-20000}"
date="${SAMPLE_DATE:-2026-11-20}"
out="$(mktemp -d)"

urlencode() { python -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
pg_pw="$(urlencode "$DEPT_PG_PASSWORD")"
my_pw="$(urlencode "$DEPT_MARIADB_PASSWORD")"

datacloud sample --persons "$persons" --date "$date" --out "$out" \
  --url "postgresql+psycopg2://${DEPT_PG_USER:-datacloud}:${pg_pw}@dept-postgres:5432/dc_{dept}"
datacloud sample --persons "$persons" --date "$date" --out "$out" \
  --url "mysql+pymysql://root:${my_pw}@dept-mariadb:3306/dc_{dept}"
rm -rf "$out"
echo "seed-samples: $persons persons into dept-postgres and dept-mariadb (dc_<dept>)"
