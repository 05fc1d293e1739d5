"""The data plane on an S3-compatible object store: one real department night with
``DATACLOUD_ROOT=s3://bucket/prefix`` and the control plane on a local ``DATACLOUD_STATE_ROOT``.

The object store is moto's S3 server (``python -m moto.server``) on 127.0.0.1 and a free port,
spoken to over real HTTP by pyarrow's S3 client, delta-rs and boto3: it stands in for MinIO
or a cloud store, which cannot run here. Everything else is real: the sample gongan database
(SQLite), ``nightly.extract`` → ``stage`` → ``report``, ``curation_night.curate_night`` with its
quality gate, Delta tables, and the lookup store loading the curated snapshot.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from datacloud import curation_night, nightly
from datacloud.config import load_departments
from datacloud.delta import load, read_table
from datacloud.landing import IncompletePartition, read_partition, replace_partition
from datacloud.paths import StorageRoot
from datacloud.sample import DirtRates, generate
from datacloud.sample.generate import SampleData
from datacloud.sample.writer import write_sqlite
from datacloud.storage import ObjectPath

DS = date(2026, 11, 20)
PERSONS = 400
BUCKET = "s3storage-datacloud"
PREFIX = "night"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server in its own process on 127.0.0.1 and a free port.

    Not ``ThreadedMotoServer``: in a thread of this process it needs the GIL, which some
    delta-rs calls (``DeltaTable.history``) hold while they wait for the server's answer.
    """
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            if proc.poll() is not None:
                raise RuntimeError(f"moto server exited with {proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("moto server did not listen within 30 s")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    """A fresh bucket, the AWS_* variables set for it, and the two roots in the environment."""
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ALLOW_HTTP", "true")
    monkeypatch.setenv("DATACLOUD_ROOT", f"s3://{BUCKET}/{PREFIX}/")
    monkeypatch.setenv("DATACLOUD_STATE_ROOT", str(tmp_path / "state"))
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    yield client
    keys = [o["Key"] for o in _objects(client, "")]
    for i in range(0, len(keys), 1000):
        client.delete_objects(
            Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in keys[i : i + 1000]]}
        )
    client.delete_bucket(Bucket=BUCKET)


def _objects(client: Any, prefix: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        out += page.get("Contents", [])
    return out


def _content(client: Any) -> dict[str, str]:
    """Every object of the bucket by key, with its ETag (the content's hash); without the empty
    ``.../`` folder markers pyarrow's S3 file system leaves when it deletes a prefix's last
    object (no reader lists them)."""
    return {o["Key"]: o["ETag"] for o in _objects(client, "") if not o["Key"].endswith("/")}


def _night(url: str, run: str) -> dict[str, Any]:
    extracted = nightly.extract(
        StorageRoot.from_env(), nightly.department("gongan"), "czrk", DS, url
    )
    staged = nightly.stage(StorageRoot.from_env(), nightly.department("gongan"), "czrk", DS, run)
    nightly.report(StorageRoot.from_env(), nightly.department("gongan"), DS)
    curated = curation_night.curate_night(StorageRoot.from_env(), load_departments(), DS, run)
    return {"extracted": extracted, "staged": staged, "curated": curated}


def test_a_department_night_on_the_object_store(s3: Any, tmp_path: Path) -> None:
    sample = generate(PERSONS, 5, business_date=DS, dirt=DirtRates.parse([]))
    czrk = sample.tables["gongan"]["czrk"]
    one = SampleData(tables={"gongan": {"czrk": czrk}}, ground_truth=pa.table({}))
    url = f"sqlite:///{write_sqlite(one, tmp_path / 'sample')['gongan']}"

    first = _night(url, "s3-night-1")
    root = StorageRoot.from_env()
    assert isinstance(root.data_root, ObjectPath)
    assert first["extracted"]["path"] == f"s3://{BUCKET}/{PREFIX}/raw/gongan/czrk/ds={DS}"

    # the data plane is in the bucket: raw partition with its marker, staged and curated Delta
    keys = set(_content(s3))
    raw = f"{PREFIX}/raw/gongan/czrk/ds={DS}/"
    marker = json.loads(s3.get_object(Bucket=BUCKET, Key=raw + "_SUCCESS")["Body"].read())
    assert marker["rows"] == czrk.num_rows
    assert {raw + f for f in marker["files"]} <= keys
    assert any(k.startswith(f"{PREFIX}/staged/gongan/czrk/_delta_log/") for k in keys)
    assert any(k.startswith(f"{PREFIX}/curated/person/_delta_log/") for k in keys)
    assert any(
        k.startswith(f"{PREFIX}/staged/gongan/czrk/") and k.endswith(".parquet") for k in keys
    )
    # the control plane is not: run state, report, quality results, curation state are local
    assert not [k for k in keys if k.split("/")[1] in {"runs", "reports", "quality", "rejected"}]
    state = tmp_path / "state"
    assert (state / "reports" / "gongan" / DS.isoformat() / "report.json").is_file()
    assert (state / "runs" / "gongan" / DS.isoformat()).is_dir()
    assert (state / "curated" / "_curation.json").is_file()

    # read back through deltalake with the storage options: counts reconcile, keys unique
    assert read_partition(root.raw_partition("gongan", "czrk", DS)).num_rows == czrk.num_rows
    staged = read_table(root.staged("gongan", "czrk"))
    assert staged.num_rows == first["staged"]["rows_accepted"] > 0
    assert pc.count_distinct(staged["_source_pk"]).as_py() == staged.num_rows
    person = read_table(root.curated("person"))
    assert 0 < person.num_rows <= staged.num_rows
    assert pc.count_distinct(person["id_number"]).as_py() == person.num_rows
    report = json.loads((state / "reports" / "gongan" / DS.isoformat() / "report.json").read_text())
    assert report["totals"]["rows_accepted"] == staged.num_rows

    # a rerun of the night changes no content: same objects, same Delta versions
    before = _content(s3)
    versions = {
        "staged": load(root.staged("gongan", "czrk")).version(),
        "person": load(root.curated("person")).version(),
    }
    _night(url, "s3-night-2")
    after = _content(s3)
    marker_key = raw + "_SUCCESS"
    assert {k: v for k, v in after.items() if not k.startswith(raw)} == {
        k: v for k, v in before.items() if not k.startswith(raw)
    }
    rerun_marker = json.loads(s3.get_object(Bucket=BUCKET, Key=marker_key)["Body"].read())
    assert rerun_marker["rows"] == marker["rows"]
    # the raw partition holds the rerun's files only: the first attempt was cleaned up
    assert sorted(k for k in after if k.startswith(raw)) == sorted(
        [marker_key] + [raw + f for f in rerun_marker["files"]]
    )
    assert load(root.staged("gongan", "czrk")).version() == versions["staged"]
    assert load(root.curated("person")).version() == versions["person"]

    # the lookup store serves the curated snapshot read from the object store
    from datacloud.lookup.store import CuratedStore

    store = CuratedStore(root)
    assert store.refresh()
    snapshot = store.current()
    assert snapshot.version("person") == versions["person"]
    some = person["id_number"][0].as_py()
    (row,) = snapshot.rows("person", "id_number", some)
    assert row["id_number"] == some


def test_a_failed_landing_keeps_the_committed_partition(s3: Any) -> None:
    partition = StorageRoot.from_env().raw_partition("gongan", "czrk", DS)
    with pytest.raises(IncompletePartition):
        read_partition(partition)
    good = pa.table({"id": ["1", "2", "3"]})
    with replace_partition(partition) as writer:
        writer.write(good)
    with (
        pytest.raises(RuntimeError, match="source went away"),
        replace_partition(partition) as writer,
    ):
        writer.write(pa.table({"id": ["9"] * 10}))
        raise RuntimeError("source went away")
    assert read_partition(partition).equals(good)
    prefix = f"{PREFIX}/raw/gongan/czrk/ds={DS}/"
    # the failed attempt's files are gone: the committed files and the marker remain
    assert len([o for o in _objects(s3, prefix) if not o["Key"].endswith("/")]) == 2


def test_chunks_land_as_one_partition_without_copying(s3: Any) -> None:
    from datacloud.landing import chunk_folder, land_chunks, write_chunk

    partition = StorageRoot.from_env().raw_partition("gongan", "czrk", DS)
    folder = chunk_folder(partition, "manual__2026-11-21T02:00")
    with write_chunk(folder, 0) as writer:
        writer.write(pa.table({"id": ["1", "2"]}))
    with pytest.raises(IncompletePartition, match=r"chunks \[1\] of 2"):
        land_chunks(partition, folder, 2, pa.schema([("id", pa.string())]))
    for attempt in range(2):  # a retried chunk replaces its earlier attempt
        with write_chunk(folder, 1) as writer:
            writer.write(pa.table({"id": [f"3-{attempt}"]}))
    rows = land_chunks(partition, folder, 2, pa.schema([("id", pa.string())]))
    assert rows == 3
    assert read_partition(partition)["id"].to_pylist() == ["1", "2", "3-1"]
    prefix = f"{PREFIX}/raw/gongan/czrk/ds={DS}/"
    data = [o["Key"] for o in _objects(s3, prefix) if o["Key"].endswith(".parquet")]
    assert len(data) == 2  # chunk 0 and the second attempt of chunk 1
