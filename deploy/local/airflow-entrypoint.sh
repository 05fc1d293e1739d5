#!/usr/bin/env bash
# Entrypoint of the local Airflow base image, as the official image's: `bash ...`,
# `python ...` and `airflow ...` run as given; anything else is an Airflow subcommand
# (api-server, scheduler, `celery worker`, ...) and runs as `airflow <args>`. So
# ["celery", "worker"] is `airflow celery worker`, not Celery's own CLI.
set -euo pipefail
case "${1:-}" in
  bash | python | airflow) exec "$@" ;;
  *) exec airflow "$@" ;;
esac
