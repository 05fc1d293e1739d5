"""The paged snapshot (datacloud.lookup.paged): the files built once per curated version, read
with pread from the shared page cache. Real Delta tables, real files, real subprocesses for the
concurrent builders; nothing is mocked."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from datacloud.delta import overwrite, read
from datacloud.lookup import answers, paged
from datacloud.lookup.paged import PagedSnapshot, ensure_built, serving_folder
from datacloud.lookup.snapshot import Snapshot
from datacloud.paths import StorageRoot

REPO = Path(__file__).resolve().parents[2]
NAMES = ['李"四', "张\\三", "x\x01y\u2028z", None, "王五", "赵六", "钱七", "孙八"]


def _person(n: int = 40) -> pa.Table:
    ids = [f"3301061990{i:07d}X"[:18] for i in range(n)]
    ids[5] = ids[4]  # a key twice
    ids[7] = None  # a row without a key
    ids[9] = "SHORT9"  # keys of different widths
    return pa.table(
        {
            "id_number": pa.array(list(reversed(ids)), pa.string()),  # not in key order
            "name": [NAMES[i % len(NAMES)] for i in range(n)],
            "name_source": pa.array(["gongan", "minzheng"] * (n // 2)).dictionary_encode(),
            "name_as_of": pa.array([date(2026, 11, 1 + i % 20) for i in range(n)], pa.date32()),
            "capital": pa.array(
                [Decimal(f"{i}.500000") if i % 3 else None for i in range(n)],
                pa.decimal128(20, 6),
            ),
            "area": [float(i) / 3 if i % 4 else (math.inf if i % 8 else None) for i in range(n)],
            "count": pa.array([i if i % 5 else None for i in range(n)], pa.int64()),
            "flag": [bool(i % 2) for i in range(n)],
            "at": pa.array(
                [datetime(2026, 11, 20, 1, 2, i % 60) for i in range(n)], pa.timestamp("us")
            ),
        }
    )


def _same(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    return json.dumps(a, default=str, sort_keys=True) == json.dumps(b, default=str, sort_keys=True)


def test_paged_rows_are_the_in_memory_snapshots_rows(
    storage_root: StorageRoot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every key (duplicates, nulls, mixed widths, absent keys) and every column type answers
    exactly what the Arrow snapshot answers, across several record batches and key blocks."""
    monkeypatch.setattr(paged, "BATCH_ROWS", 7)
    monkeypatch.setattr(paged, "BLOCK", 4)
    table = _person()
    overwrite(storage_root.curated("person"), table, ["id_number"], "r", "2026-11-20")
    memory = Snapshot.load(storage_root, {"person": 0})
    served = PagedSnapshot.open(storage_root, {"person": 0})
    keys = [k for k in table["id_number"].to_pylist() if k] + ["", "330106", "ZZZZ", "0" * 30]
    for key in keys:
        assert _same(
            served.rows("person", "id_number", key), memory.rows("person", "id_number", key)
        ), key
    found = served.rows("person", "id_number", table["id_number"][35].as_py())
    assert len(found) == 2  # the key that is there twice
    assert served.versions == memory.versions
    assert served.distinct("person", "name_source") == ["gongan", "minzheng"]
    assert served.rows("person", "name", "王五") == []  # no index on name


def test_the_lookups_answer_the_same_from_files_and_from_memory(storage_root: StorageRoot) -> None:
    ids = sorted(f"33010619800101{i:03d}1" for i in range(12))
    person = pa.table(
        {
            "id_number": ids,
            "name": [f"张{i}" for i in range(12)],
            "name_source": ["gongan"] * 12,
            "name_as_of": pa.array([date(2026, 11, 1)] * 12, pa.date32()),
        }
    )
    rights = pa.table(
        {
            "certificate_no": [f"浙(2020)第{i}号" for i in range(6)],
            "owner_id_number": [ids[0], ids[0], ids[3], ids[5], ids[5], ids[5]],
            "status": ["现势", "历史", "现势", "现势", "现势", "历史"],
            "source": ["bdc"] * 6,
            "as_of": pa.array([date(2026, 11, 1)] * 6, pa.date32()),
        }
    )
    overwrite(storage_root.curated("person"), person, ["id_number"], "r", "2026-11-20")
    overwrite(
        storage_root.curated("property_right"), rights, ["owner_id_number"], "r", "2026-11-20"
    )
    versions = {"person": 0, "property_right": 0}
    memory, served = (
        Snapshot.load(storage_root, versions),
        PagedSnapshot.open(storage_root, versions),
    )
    for key in [*ids, "110101199003077757"]:
        assert answers.person(served, key) == answers.person(memory, key)
        assert answers.property_status(served, key) == answers.property_status(memory, key)
    assert answers.property_status(served, ids[5])["property_count"] == 2


def test_serving_maps_no_page_of_the_files(storage_root: StorageRoot) -> None:
    """The rows and keys are read with pread from the page cache (shared by the replicas),
    never mapped: a memory map of them would make every 2 MiB folio a lookup touches this
    process's own resident memory (measured: docs/lookup.md)."""
    overwrite(storage_root.curated("person"), _person(400), ["id_number"], "r", "2026-11-20")
    served = PagedSnapshot.open(storage_root, {"person": 0})
    for key in _person(400)["id_number"].to_pylist()[:200]:
        if key:
            served.rows("person", "id_number", key)
    folder = str(serving_folder(storage_root))
    with open("/proc/self/maps", encoding="utf-8") as maps:
        mapped = [line for line in maps if folder in line]
    assert mapped == []


_BUILDER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from datacloud.lookup import paged
    from datacloud.paths import StorageRoot

    root, log = StorageRoot(Path(sys.argv[1])), Path(sys.argv[2])
    real = paged.build_table

    def counted(*args, **kwargs):
        with log.open("a") as fh:
            fh.write(f"{os.getpid()}\\n")
        time.sleep(0.3)  # hold the lock a while, so the others queue behind it
        return real(*args, **kwargs)

    paged.build_table = counted
    if len(sys.argv) > 3:  # die in the middle of the build, after rows.arrow is written
        def killed(*args, **kwargs):
            real_write = paged._write_ipc
            def dying(path, *a, **k):
                real_write(path, *a, **k)
                os._exit(9)
            paged._write_ipc = dying
            return real(*args, **kwargs)
        paged.build_table = killed
    path = paged.ensure_built(root, paged.serving_folder(root), "person", 0)
    print(path)
    """
)


def _builder(root: StorageRoot, log: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _BUILDER, str(root.root), str(log), *extra],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def test_replicas_build_a_version_once_and_all_open_it(
    storage_root: StorageRoot, tmp_path: Path
) -> None:
    overwrite(storage_root.curated("person"), _person(), ["id_number"], "r", "2026-11-20")
    log = tmp_path / "builds.log"
    procs = [_builder(storage_root, log) for _ in range(3)]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0]
    assert len(set(outs)) == 1  # one folder for all
    assert len(log.read_text().split()) == 1  # built by one of them
    table_dir = serving_folder(storage_root) / "person"
    assert [p.name for p in table_dir.iterdir() if p.name.startswith(".tmp")] == []
    assert (Path(outs[0]) / "meta.json").is_file()
    for f in Path(outs[0]).iterdir():  # the curated personal data: never world-readable
        assert f.stat().st_mode & 0o007 == 0, f.name


def test_a_build_killed_half_way_is_never_served_and_is_redone(
    storage_root: StorageRoot, tmp_path: Path
) -> None:
    overwrite(storage_root.curated("person"), _person(), ["id_number"], "r", "2026-11-20")
    proc = _builder(storage_root, tmp_path / "builds.log", "die")
    proc.communicate(timeout=120)
    assert proc.returncode == 9
    table_dir = serving_folder(storage_root) / "person"
    leftovers = [p for p in table_dir.iterdir() if p.name.startswith(".tmp")]
    assert len(leftovers) == 1 and (leftovers[0] / "rows.arrow").is_file()
    assert [p for p in table_dir.iterdir() if not p.name.startswith(".")] == []  # nothing served
    path = ensure_built(storage_root, serving_folder(storage_root), "person", 0)
    assert (path / "meta.json").is_file()
    assert [p for p in table_dir.iterdir() if p.name.startswith(".tmp")] == []  # cleaned
    served = PagedSnapshot.open(storage_root, {"person": 0})
    key = _person()["id_number"][0].as_py()
    assert served.rows("person", "id_number", key)[0]["id_number"] == key


def test_a_table_created_again_never_meets_an_old_build(storage_root: StorageRoot) -> None:
    overwrite(storage_root.curated("person"), _person(), ["id_number"], "r", "2026-11-20")
    first = PagedSnapshot.open(storage_root, {"person": 0})
    import shutil

    shutil.rmtree(storage_root.curated("person"))  # dropped, then written again: version 0 again
    table = _person().set_column(1, "name", pa.array(["新"] * 40))
    overwrite(storage_root.curated("person"), table, ["id_number"], "r", "2026-11-21")
    read._load_version.cache_clear()  # a process that never saw the first table
    second = PagedSnapshot.open(storage_root, {"person": 0})
    key = table["id_number"][0].as_py()
    assert second.rows("person", "id_number", key)[0]["name"] == "新"
    assert first.tables["person"].folder != second.tables["person"].folder


def test_a_run_of_one_key_across_key_blocks_is_found_whole(
    storage_root: StorageRoot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key held by more rows than a key block (and starting mid-block) is found in all its
    rows, as are the keys on either side of it, whatever block boundary it crosses."""
    monkeypatch.setattr(paged, "BATCH_ROWS", 5)
    monkeypatch.setattr(paged, "BLOCK", 4)
    ids = ["110"] * 3 + ["220"] * 11 + ["330"] * 4 + ["440", "5"]
    table = pa.table({"id_number": ids, "n": list(range(len(ids)))})
    overwrite(storage_root.curated("person"), table, ["id_number"], "r", "2026-11-20")
    served = PagedSnapshot.open(storage_root, {"person": 0})
    for key in ("110", "220", "330", "440", "5", "000", "225", "999", "4400"):
        want = sorted(n for k, n in zip(ids, range(len(ids)), strict=True) if k == key)
        got = sorted(r["n"] for r in served.rows("person", "id_number", key))
        assert got == want, key
