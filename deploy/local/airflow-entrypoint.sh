#!/usr/bin/env bash
# Entrypoint of the local Airflow base image, as the official image's: an Airflow subcommand
# (api-server, scheduler, celery worker, ...) runs as `airflow <subcommand>`; bash, python,
# airflow, datacloud, celery or any absolute path run as given.
set -euo pipefail
case "${1:-}" in
  bash | sh | python | python3 | airflow | datacloud | celery | pip | /*) exec "$@" ;;
  *) exec airflow "$@" ;;
esac
