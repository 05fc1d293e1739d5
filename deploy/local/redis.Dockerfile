# Local Redis from Debian's packages (bookworm: Redis 7.0), standing in for redis:7.4:
# redis-server and redis-cli on PATH, working directory /data owned by the redis user.
ARG BASE=datacloud-local/base:bookworm
FROM ${BASE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server redis-tools \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data && chown redis:redis /data
USER redis
WORKDIR /data
EXPOSE 6379
CMD ["redis-server", "--protected-mode", "no"]
