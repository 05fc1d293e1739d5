"""Publishing curated tables on the object store the way it is done locally: deletion vectors
committed by a conditional PUT, and the table lease.

moto's S3 server (its own process, real HTTP; ``test_s3_storage``'s fixtures) stands in for
MinIO or a cloud store, which cannot run here. moto honours ``If-None-Match: *`` and
``If-Match`` on PutObject (checked below); its check is not atomic under concurrent requests,
as a real store's is, so the race tests run on local storage.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import test_s3_storage

from datacloud import delta
from datacloud.delta import lock as table_lock
from datacloud.storage import ObjectPath

BUCKET = test_s3_storage.BUCKET
s3_endpoint = test_s3_storage.s3_endpoint  # the fixtures
s3 = test_s3_storage.s3


def _rows(ids: list[int], tag: str) -> pa.Table:
    return pa.table({"id_number": [f"{i:017d}X" for i in ids], "name": [f"{tag}{i}" for i in ids]})


def test_a_deletion_vector_night_on_the_object_store(s3: Any) -> None:
    path = ObjectPath(f"s3://{BUCKET}/curated/person")
    delta.publish(
        path,
        _rows(list(range(100)), "a"),
        None,
        delta.PublishSpec("id_number", ("id_number",)),
        delta.CommitInfo("r", "d1"),
    )
    r = delta.publish(
        path,
        _rows([5, 200], "b"),
        pa.array([f"{7:017d}X"]),
        delta.PublishSpec("id_number", ("id_number",), full=False),
        delta.CommitInfo("r", "d2"),
    )
    assert (r.inserted, r.updated, r.deleted) == (1, 1, 1)
    assert delta.load(path).history(1)[0]["datacloud.publish"] == "deletion_vectors"
    got = delta.read_table(path)
    names = dict(zip(got["id_number"].to_pylist(), got["name"].to_pylist(), strict=True))
    assert len(names) == 100 and names[f"{5:017d}X"] == "b5" and f"{7:017d}X" not in names
    # the log entry is created only if absent: a second writer of the same version loses
    entry = path / "_delta_log" / f"{r.version:020d}.json"
    assert table_lock.put_if_absent(entry, b"{}") is None
    assert json.loads(table_lock.get_object(entry)[0].splitlines()[0])["commitInfo"]  # type: ignore[index]
    # the lease is gone after the publish
    assert table_lock.get_object(table_lock.lock_location(path)) is None  # type: ignore[arg-type]


def test_the_lease_excludes_a_second_writer_until_it_expires(s3: Any) -> None:
    path = ObjectPath(f"s3://{BUCKET}/curated/enterprise")
    lease = table_lock.lock_location(path)
    assert isinstance(lease, ObjectPath)
    with table_lock.table_lock(path, lease_s=60):
        holder = json.loads(table_lock.get_object(lease)[0])  # type: ignore[index]
        assert holder["expires"] > time.time()
        with pytest.raises(table_lock.TableLocked, match="lease"):  # another thread: waits
            import threading

            errors: list[BaseException] = []

            def other() -> None:
                try:
                    with table_lock.table_lock(path, wait_s=0.5):
                        pass
                except BaseException as e:
                    errors.append(e)

            t = threading.Thread(target=other)
            t.start()
            t.join(timeout=60)
            raise errors[0]
    assert table_lock.get_object(lease) is None
    # a holder that died: its lease expired, the next writer takes it over
    stale = json.dumps({"owner": "dead:1", "expires": time.time() - 1}).encode()
    assert table_lock.put_if_absent(lease, stale) is not None
    with table_lock.table_lock(path, wait_s=5):
        assert json.loads(table_lock.get_object(lease)[0])["owner"] != "dead:1"  # type: ignore[index]
