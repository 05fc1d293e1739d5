# The local S3-compatible object store: moto's server (moto[server], pinned by
# requirements.lock) on Debian's Python, standing in for MinIO. It honours conditional PUT
# (If-None-Match: *, If-Match), which the Delta commits rely on (AWS_CONDITIONAL_PUT=etag).
# It keeps objects in memory: a restart of this container empties the store.
ARG BASE=datacloud-local/base:bookworm
FROM ${BASE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/s3
COPY requirements.lock /tmp/requirements.lock
RUN grep -E '^(moto|boto3|botocore|flask|flask-cors|werkzeug|jinja2|markupsafe|itsdangerous|click|blinker|requests|urllib3|idna|certifi|charset-normalizer|responses|xmltodict|cryptography|cffi|pycparser|pyyaml|python-dateutil|six|jmespath|s3transfer)==' /tmp/requirements.lock > /tmp/s3.txt \
 && /opt/s3/bin/pip install --no-cache-dir --quiet -c /tmp/s3.txt "moto[server]" \
 && rm /tmp/requirements.lock /tmp/s3.txt
COPY deploy/local/s3-init.py /opt/s3/s3-init.py
ENV PATH=/opt/s3/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
EXPOSE 9000
CMD ["moto_server", "--host", "0.0.0.0", "--port", "9000"]
