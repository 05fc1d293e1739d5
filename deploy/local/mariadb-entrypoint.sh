#!/usr/bin/env bash
# First start: mariadb-install-db, then root@localhost and root@'%' with MARIADB_ROOT_PASSWORD
# (set on a server that listens on no port); later starts only run the server. The marker is
# written last: an init that failed half-way is started again from an empty folder.
set -euo pipefail
: "${MARIADB_ROOT_PASSWORD:?set MARIADB_ROOT_PASSWORD}"
datadir=/var/lib/mysql
marker="$datadir/.datacloud-initialised"
if [ ! -f "$marker" ]; then
  find "$datadir" -mindepth 1 -delete
  mariadb-install-db --datadir="$datadir" --auth-root-authentication-method=normal \
    --skip-test-db >/dev/null
  mariadbd --datadir="$datadir" --skip-networking --socket=/run/mysqld/init.sock &
  pid=$!
  for _ in $(seq 1 60); do
    mariadb-admin --user=root --socket=/run/mysqld/init.sock ping >/dev/null 2>&1 && break
    sleep 1
  done
  pw="${MARIADB_ROOT_PASSWORD//\\/\\\\}"
  pw="${pw//\'/\\\'}"
  mariadb --user=root --socket=/run/mysqld/init.sock <<SQL
ALTER USER 'root'@'localhost' IDENTIFIED BY '$pw';
CREATE USER 'root'@'%' IDENTIFIED BY '$pw';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;
FLUSH PRIVILEGES;
SQL
  kill "$pid"
  wait "$pid" || true
  touch "$marker"
  echo "mariadb-entrypoint: initialised $datadir"
fi
if [ "${1:-}" = mariadbd ]; then
  shift
  exec mariadbd --datadir="$datadir" --bind-address=0.0.0.0 --port=3306 "$@"
fi
exec "$@"
