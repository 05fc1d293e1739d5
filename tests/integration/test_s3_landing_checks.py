"""On the object store (moto's S3 server over real HTTP, as in test_s3_storage; a real
store cannot run here) the marker is the commit and is checked against the files: a chunk
whose file went missing is not landed, and a partition's marker that counts rows its files
do not hold is refused by the reader."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_s3_storage import BUCKET, DS, PREFIX, _objects, s3, s3_endpoint  # noqa: F401

from datacloud.landing import (
    IncompletePartition,
    chunk_folder,
    land_chunks,
    read_partition,
    replace_partition,
    write_chunk,
)
from datacloud.paths import StorageRoot

pytestmark = pytest.mark.integration


def test_a_chunk_missing_a_file_is_not_landed(s3: Any) -> None:  # noqa: F811
    partition = StorageRoot.from_env().raw_partition("gongan", "czrk", DS)
    with replace_partition(partition) as w:
        w.write(pa.table({"id": ["old"]}))
    folder = chunk_folder(partition, "manual__2026-11-21T02:00")
    for i in range(2):
        with write_chunk(folder, i) as w:
            w.rows_per_file = 1
            w.write(pa.table({"id": [f"{i}a"]}))
            w.write(pa.table({"id": [f"{i}b"]}))
    prefix = f"{PREFIX}/raw/gongan/czrk/ds={DS}/_chunks-"
    lost = sorted(o["Key"] for o in _objects(s3, prefix) if o["Key"].endswith(".parquet"))[-1]
    s3.delete_object(Bucket=BUCKET, Key=lost)
    with pytest.raises(IncompletePartition, match="chunk 1's marker says 2 rows"):
        land_chunks(partition, folder, 2, pa.schema([("id", pa.string())]))
    assert read_partition(partition)["id"].to_pylist() == ["old"]  # the last commit stands


def test_a_marker_counting_rows_no_file_holds_is_refused(s3: Any) -> None:  # noqa: F811
    partition = StorageRoot.from_env().raw_partition("gongan", "czrk", DS)
    with replace_partition(partition) as w:
        w.write(pa.table({"id": ["1", "2"]}))
    key = f"{PREFIX}/raw/gongan/czrk/ds={DS}/_SUCCESS"
    meta = json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps({**meta, "rows": 4}).encode())
    with pytest.raises(IncompletePartition, match="marker says 4 rows, files hold 2"):
        read_partition(partition)
