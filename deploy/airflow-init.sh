#!/usr/bin/env bash
# One-shot init of the compose stack: migrate the Airflow metadata database and write the
# admin password for the SimpleAuthManager (user "admin", role admin, from AIRFLOW_ADMIN_PASSWORD).
# Idempotent: a rerun migrates nothing new and rewrites the same password file.
set -euo pipefail

: "${AIRFLOW_ADMIN_PASSWORD:?set AIRFLOW_ADMIN_PASSWORD in .env}"
: "${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:?}"

airflow db migrate

passwords="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE}"
mkdir -p "$(dirname "$passwords")"
tmp="$(mktemp "$passwords.XXXXXX")"
python - "$tmp" <<'PY'
import json, os, sys
with open(sys.argv[1], "w", encoding="utf-8") as fh:
    json.dump({"admin": os.environ["AIRFLOW_ADMIN_PASSWORD"]}, fh)
PY
chmod 600 "$tmp"
mv -f "$tmp" "$passwords"   # atomic: the api-server never reads half a file
echo "airflow-init: metadata database migrated; admin password written to $passwords"
