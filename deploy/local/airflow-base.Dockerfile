# The local stand-in for apache/airflow:3.3.2-python3.11 (docs/operations.md, "Running the
# stack without a registry"): Debian's Python 3.11, curl and dumb-init on the debootstrap base,
# user airflow (uid 50000, gid 0) with a virtualenv on PATH, AIRFLOW_HOME=/opt/airflow and an
# entrypoint that runs an Airflow subcommand as the official image does. Airflow itself comes
# with requirements.lock in deploy/Dockerfile, built FROM this image.
ARG BASE=datacloud-local/base:bookworm
FROM ${BASE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv curl dumb-init ca-certificates libpq5 tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 50000 --gid 0 --home-dir /home/airflow --create-home --shell /bin/bash airflow \
 && mkdir -p /opt/airflow/logs /opt/airflow/dags /opt/venv \
 && chown -R airflow:root /opt/airflow /opt/venv && chmod -R g+rwX /opt/airflow
USER airflow
RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir --quiet "pip==25.1.1" "setuptools>=70" wheel
COPY deploy/local/airflow-entrypoint.sh /entrypoint
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    AIRFLOW_HOME=/opt/airflow \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DUMB_INIT_SETSID=1
WORKDIR /opt/airflow
ENTRYPOINT ["/usr/bin/dumb-init", "--", "/entrypoint"]
CMD ["--help"]
