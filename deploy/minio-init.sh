#!/bin/sh
# One-shot MinIO init (runs in the minio/mc image): the bucket of the storage root and the
# datacloud service user with read-write access to it. Idempotent.
set -eu

mc alias set local http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD"
mc mb --ignore-existing "local/${DATACLOUD_BUCKET}"
mc admin user add local "$DATACLOUD_S3_ACCESS_KEY" "$DATACLOUD_S3_SECRET_KEY"
mc admin policy attach local readwrite --user "$DATACLOUD_S3_ACCESS_KEY" || true  # already attached
echo "minio-init: bucket ${DATACLOUD_BUCKET} and user ${DATACLOUD_S3_ACCESS_KEY} ready"
