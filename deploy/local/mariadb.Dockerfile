# Local MariaDB from Debian's packages (bookworm: MariaDB 10.11), standing in for mariadb:11.4.
# Takes MARIADB_ROOT_PASSWORD (root@'%' and root@localhost) and the official image's
# `healthcheck.sh --connect --innodb_initialized` (deploy/local/mariadb-healthcheck.sh).
ARG BASE=datacloud-local/base:bookworm
FROM ${BASE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends mariadb-server mariadb-client \
 && rm -rf /var/lib/apt/lists/* \
 && rm -rf /var/lib/mysql && mkdir -p /var/lib/mysql /run/mysqld \
 && chown -R mysql:mysql /var/lib/mysql /run/mysqld
COPY deploy/local/mariadb-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
COPY deploy/local/mariadb-healthcheck.sh /usr/local/bin/healthcheck.sh
USER mysql
EXPOSE 3306
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["mariadbd"]
