"""One-shot init of the local object store (moto's server): the bucket of the storage root.

Replaces deploy/minio-init.sh in deploy/compose.local.yaml. moto accepts any access key, so
there is no service user to create; the bucket is created idempotently. Retries for up to
60 s while the server starts.
"""

import os
import sys
import time

import boto3
from botocore.exceptions import ClientError, EndpointConnectionError

bucket = os.environ["DATACLOUD_BUCKET"]
s3 = boto3.client(
    "s3",
    endpoint_url=os.environ.get("S3_ENDPOINT", "http://minio:9000"),
    aws_access_key_id=os.environ["DATACLOUD_S3_ACCESS_KEY"],
    aws_secret_access_key=os.environ["DATACLOUD_S3_SECRET_KEY"],
    region_name=os.environ.get("DATACLOUD_S3_REGION", "us-east-1"),
)
for _ in range(30):
    try:
        s3.create_bucket(Bucket=bucket)
        break
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            break
        raise
    except EndpointConnectionError:
        time.sleep(2)
else:
    sys.exit("s3-init: the object store did not answer within 60 s")
print(f"s3-init: bucket {bucket} ready")
