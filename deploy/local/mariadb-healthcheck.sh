#!/usr/bin/env bash
# The official mariadb image's `healthcheck.sh --connect --innodb_initialized`, reduced to what
# docker-compose.yml asks: the server answers on its socket and InnoDB has started.
set -eu
export MYSQL_PWD="${MARIADB_ROOT_PASSWORD:-}"
engine="$(mariadb --user=root --protocol=socket --batch --skip-column-names \
  -e "SELECT ENGINE FROM information_schema.ENGINES WHERE ENGINE='InnoDB' AND SUPPORT IN ('YES','DEFAULT')")"
[ "$engine" = InnoDB ]
