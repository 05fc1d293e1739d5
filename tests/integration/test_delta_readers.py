"""Independent readers of the curated Delta tables agree with a copy-on-write twin.

Incremental nights publish curated tables with deletion vectors that our own code writes
(``datacloud/delta/dv_writer.py``). Here several nights go
through ``delta.publish`` and ``delta.maintain`` twice: with deletion vectors (the platform's
default) and without (copy-on-write: the twin, which every reader can read). After each night
the deletion-vector table is read by each engine a platform user may point at it, and its whole
content (every column, sorted by key) must equal the twin's, and its row count the twin's:

- polars (``pl.read_delta``, ``pl.scan_delta``);
- deltalake's own DataFusion engine (``DeltaTable.scan()``, ``QueryBuilder``);
- DuckDB's ``delta_scan``, the extension file of the PyPI package ``duckdb-extension-delta``
  loaded by path (``INSTALL delta`` would download; autoinstall is off);
- ClickHouse embedded (chdb), ``deltaLakeLocal`` with its delta-kernel reader;
- Spark Connect served by Sail (pysail), started in this process on 127.0.0.1.

Every engine is a locked dependency: one that fails to import or start fails the test. Nothing
is mocked. ``test_the_readers_that_answer_wrongly_or_refuse`` pins the readers that
docs/curation.md warns about ("Reading the curated tables"), so the warnings stay true, and
``test_the_documented_snippets_read_the_live_rows`` runs that section's snippets as written.

Row data is synthetic (``00000000000000042X``-style keys, made-up names): no personal data.
"""

from __future__ import annotations

import datetime as dt
import decimal
import glob
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, QueryBuilder

from datacloud.delta import (
    ROW_HASH,
    CommitInfo,
    MaintainSpec,
    PublishSpec,
    deleted_positions,
    maintain,
    publish,
    read_table,
)
from datacloud.masking import mask_id_number

KEY = "id_number"
ROW_GROUP_ROWS = 1_000  # the first night's file holds several row groups
SCHEMA = pa.schema(  # the curated tables' types: text (Chinese), dates, decimals, integers, nulls
    [
        (KEY, pa.string()),
        ("name", pa.string()),
        ("sex", pa.string()),
        ("birth_date", pa.date32()),
        ("phone", pa.string()),
        ("registered_address", pa.string()),
        ("registered_capital", pa.decimal128(20, 6)),
        ("n", pa.int64()),
        ("name_as_of", pa.date32()),
    ]
)
SURNAMES = "张王李赵刘陈杨黄"

Night = tuple[str, pa.Table, pa.Array | None]
Reader = Callable[[str], pa.Table]


def _key(i: int) -> str:
    return f"{i:017d}X"


def _row(i: int, tag: str, as_of: str) -> dict:
    """A synthetic person; ``tag`` changes every column but the key (the phone stays null
    for every sixth person), so a row of another tag is an update."""
    return {
        KEY: _key(i),
        "name": f"{SURNAMES[i % len(SURNAMES)]}{tag}{i % 97}",
        "sex": "1" if i % 2 else "2",
        "birth_date": dt.date(1950, 1, 1) + dt.timedelta(days=(i * 7 + len(tag)) % 20_000),
        "phone": None if i % 6 == 0 else f"13{len(tag)}{i:08d}",
        "registered_address": f"某省某市{tag}区某路{i % 500}号",
        "registered_capital": decimal.Decimal(i) / 1000 + len(tag),
        "n": i % 11 + len(tag),
        "name_as_of": dt.date.fromisoformat(as_of),
    }


def _table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def _nights() -> list[Night]:
    """A first (full) night of 4,000 persons (even numbers: odd ones are inserted later, inside
    the key range), then three incremental nights of updates, unchanged rows (published again
    as they are), inserts and deletes. Night 2 touches the first file again (its deletion
    vector grows) and night 1's file (a vector on a second file); night 3 comes after a
    checkpoint and touches both again."""
    rng = np.random.default_rng(20261121)
    first = "2026-11-17"
    state = {i: ("a", first) for i in range(0, 8_000, 2)}  # key -> (tag, as_of) published
    nights: list[Night] = [(first, _table([_row(i, "a", first) for i in sorted(state)]), None)]
    night1: set[int] = set()
    for ds, tag in (("2026-11-18", "bb"), ("2026-11-19", "ccc"), ("2026-11-20", "dddd")):
        picked = rng.choice(sorted(state), 150, replace=False).tolist()
        updated, unchanged, gone = set(picked[:100]), set(picked[100:130]), set(picked[130:])
        if night1:  # rows living in night 1's file: updated and deleted again
            again = rng.choice(sorted(night1 & state.keys()), 20, replace=False).tolist()
            updated |= set(again[:12])
            gone |= set(again[12:])
        gone -= updated
        unchanged -= updated | gone
        free = [i for i in range(1, 8_200, 2) if i not in state]
        new = set(rng.choice(free, 25, replace=False).tolist())
        rows = [_row(i, tag, ds) for i in sorted(updated | new)]
        rows += [_row(i, *state[i]) for i in sorted(unchanged)]
        if not night1:
            night1 = updated | new
        nights.append((ds, _table(rows), pa.array([_key(i) for i in sorted(gone)], pa.string())))
        for i in gone:
            del state[i]
        state.update({i: (tag, ds) for i in updated | new})
    return nights


def _expected(nights: list[Night]) -> list[pa.Table]:
    """The content after each night, computed in Python from the nights alone."""
    out = []
    model: dict[str, dict] = {}
    for _, rows, gone in nights:
        for row in rows.to_pylist():
            model[row[KEY]] = row
        for k in gone.to_pylist() if gone is not None else []:
            model.pop(k, None)
        out.append(pa.Table.from_pylist([model[k] for k in sorted(model)], schema=SCHEMA))
    return out


def _same(name: str, got: pa.Table, want: pa.Table) -> None:
    """``got`` (any engine's types and order) equals ``want`` (every column, by key). A failure
    names counts and at most three masked keys, never a row."""
    if sorted(got.column_names) != sorted(want.column_names):
        raise AssertionError(f"{name}: columns {got.column_names}, not {want.column_names}")
    got = got.select(want.column_names).cast(want.schema).sort_by(KEY).combine_chunks()
    want = want.sort_by(KEY).combine_chunks()
    if got.equals(want):
        return
    got_rows = {r[KEY]: r for r in got.to_pylist()}
    want_rows = {r[KEY]: r for r in want.to_pylist()}
    differ = sorted(
        k for k in got_rows.keys() | want_rows.keys() if got_rows.get(k) != want_rows.get(k)
    )
    counts = pc.value_counts(got[KEY])
    twice = counts.filter(pc.greater(counts.field("counts"), 1)).field("values").to_pylist()
    raise AssertionError(
        f"{name}: {got.num_rows} rows against {want.num_rows}; {len(differ)} keys with other "
        f"values, e.g. {[mask_id_number(k) for k in differ[:3]]}; {len(twice)} keys more "
        f"than once, e.g. {[mask_id_number(k) for k in sorted(twice)[:3]]}"
    )


# --- the engines ------------------------------------------------------------------------------


def _duckdb_extension() -> str:
    """The delta extension file shipped by the PyPI package for the installed DuckDB."""
    import duckdb
    import duckdb_extension_delta

    folder = Path(duckdb_extension_delta.__file__).parent / "extensions"
    found = glob.glob(str(folder / f"v{duckdb.__version__}" / "delta.duckdb_extension"))
    assert found, f"duckdb-extension-delta ships no extension for DuckDB {duckdb.__version__}"
    return found[0]


@pytest.fixture(scope="module")
def duckdb_con() -> Iterator[object]:
    """One DuckDB connection for the module (it sees every night's new version), the delta
    extension loaded from the PyPI package's file; nothing is downloaded."""
    import duckdb

    con = duckdb.connect(
        config={"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"}
    )
    con.execute(f"LOAD '{_duckdb_extension()}'")
    try:
        yield con
    finally:
        con.close()


@pytest.fixture(scope="module")
def spark() -> Iterator[object]:
    """Sail's Spark Connect server on 127.0.0.1 (a free port), once for the module, and a
    pyspark-client session on it."""
    from pysail.spark import SparkConnectServer
    from pyspark.sql import SparkSession

    server = SparkConnectServer("127.0.0.1", 0)
    server.start(background=True)
    address = server.listening_address
    assert address is not None, "Sail's Spark Connect server did not start"
    session = SparkSession.builder.remote(f"sc://127.0.0.1:{address[1]}").getOrCreate()
    try:
        yield session
    finally:
        session.stop()
        server.stop()


def _chdb(sql: str, kernel: bool = True) -> pa.Table:
    """A chdb query as Arrow, with ClickHouse's delta-kernel reader (``allow_delta_kernel_rs``)
    or its older one. ClickHouse reads local files under its user_files_path only, which chdb
    sets to the working directory: the caller runs inside the tables' folder."""
    import chdb

    setting = f" SETTINGS allow_delta_kernel_rs={int(kernel)}"
    return chdb.query(sql + setting, "ArrowTable")


def _counters(duckdb_con: object, spark: object) -> dict[str, Callable[[str], int]]:
    """Each engine's row count of a table, as a user would ask for it (an engine may answer
    a count from the log's per-file row counts instead of reading the vectors)."""
    import polars as pl

    return {
        "polars scan_delta len()": lambda p: pl.scan_delta(p).select(pl.len()).collect().item(),
        "duckdb count(*)": lambda p: duckdb_con.sql(  # type: ignore[attr-defined]
            "SELECT count(*) FROM delta_scan(?)", params=[p]
        ).fetchone()[0],
        "chdb count(id_number)": lambda p: (
            _chdb(f"SELECT count(id_number) FROM deltaLakeLocal('{p}')").column(0)[0].as_py()
        ),
        "chdb count() WHERE n >= 0": lambda p: (
            _chdb(f"SELECT count() FROM deltaLakeLocal('{p}') WHERE n >= 0").column(0)[0].as_py()
        ),
        "sail count()": lambda p: spark.read.format("delta").load(p).count(),  # type: ignore[attr-defined]
    }


def _chdb_trivial_counts(path: Path) -> list[int]:
    """ClickHouse's trivial counts: ``count()``, ``count(*)``, ``sum(1)`` and ``count()``
    with a constant condition, all answered from the log's per-file row counts."""
    forms = ["count()", "count(*)", "sum(1)", "count() WHERE true"]
    out = []
    for form in forms:
        expr, _, where = form.partition(" WHERE ")
        sql = f"SELECT {expr} FROM deltaLakeLocal('{path}')" + (f" WHERE {where}" if where else "")
        out.append(_chdb(sql).column(0)[0].as_py())
    return out


def _readers(duckdb_reader: Reader, spark: object) -> dict[str, Reader]:
    import polars as pl

    return {
        "polars read_delta": lambda p: pl.read_delta(p).to_arrow(),
        "polars scan_delta": lambda p: pl.scan_delta(p).collect().to_arrow(),
        "deltalake scan()": lambda p: pa.table(DeltaTable(p).scan()),
        "deltalake QueryBuilder": lambda p: pa.table(
            QueryBuilder().register("t", DeltaTable(p)).execute("SELECT * FROM t")
        ),
        "duckdb delta_scan": duckdb_reader,
        "chdb deltaLakeLocal (delta-kernel)": lambda p: _chdb(
            f"SELECT * FROM deltaLakeLocal('{p}')"
        ),
        "sail spark.read.format('delta')": lambda p: (
            spark.read.format("delta")  # type: ignore[attr-defined]
            .load(p)
            .toArrow()
        ),
    }


def _publish_night(
    path: Path, night: int, rows: pa.Table, gone: pa.Array | None, ds: str, dv: bool
) -> tuple[int, int, int]:
    """One night as ``curate_all`` runs it: publish, then maintain (recluster when due,
    vacuum, checkpoint every ten versions). Returns the rows inserted, updated, deleted."""
    r = publish(
        path,
        rows,
        gone,
        PublishSpec(
            KEY, (KEY,), full=night == 0, deletion_vectors=dv, row_group_rows=ROW_GROUP_ROWS
        ),
        CommitInfo(f"run-{night}", ds, {"datacloud.full": "true" if night == 0 else "false"}),
    )
    maintain(
        path,
        MaintainSpec(KEY, 30, 32, row_group_rows=ROW_GROUP_ROWS),
        CommitInfo(f"run-{night}", ds),
    )
    return r.inserted, r.updated, r.deleted


def _physical_rows(path: Path) -> int:
    adds = pa.table(DeltaTable(str(path)).get_add_actions(flatten=True))
    return int(pc.sum(adds["num_records"]).as_py())


def _checkpoint_vectors(path: Path) -> int:
    """Files whose deletion vector the table's last checkpoint holds."""
    log = path / "_delta_log"
    version = json.loads((log / "_last_checkpoint").read_text())["version"]
    adds = pq.read_table(log / f"{version:020d}.checkpoint.parquet", columns=["add"])["add"]
    return sum(1 for a in adds.to_pylist() if a is not None and a.get("deletionVector"))


@pytest.mark.timeout(300)
@pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")
def test_every_reader_sees_what_a_copy_on_write_twin_holds_night_after_night(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, duckdb_con: object, spark: object
) -> None:
    monkeypatch.chdir(tmp_path)  # chdb reads local files under the working directory only
    with_dv, twin = tmp_path / "person", tmp_path / "person_cow"
    ways = ((with_dv, True), (twin, False))
    readers = _readers(
        lambda p: duckdb_con.sql(  # type: ignore[attr-defined]
            "SELECT * FROM delta_scan(?)", params=[p]
        ).to_arrow_table(),
        spark,
    )
    counters = _counters(duckdb_con, spark)
    nights = _nights()
    first_file = ""
    grown: list[int] = []
    for night, ((ds, rows, gone), expected) in enumerate(
        zip(nights, _expected(nights), strict=True)
    ):
        counts = [_publish_night(p, night, rows, gone, ds, dv) for p, dv in ways]
        assert counts[0] == counts[1], f"night {night}: {counts}"
        published, want = rows.num_rows, expected.num_rows  # ints: a failure shows no rows
        if night:  # the rows published again unchanged count as nothing
            inserted, updated, deleted = counts[0]
            assert 0 < inserted + updated < published and deleted > 0
        if night == 2:  # the vectors now live in a checkpoint; night 3's entry follows it
            DeltaTable(str(with_dv)).create_checkpoint()
            assert _checkpoint_vectors(with_dv) >= 2
        # the twin: copy-on-write, no vectors, readable by deltalake's pyarrow dataset
        twin_dt = DeltaTable(str(twin))
        assert deleted_positions(twin_dt) == {}
        twin_rows = twin_dt.to_pyarrow_table()
        _same(f"night {night}: the twin", twin_rows.drop_columns([ROW_HASH]), expected)
        # the deletion-vector table really is one: tonight's commit marked rows, grew vectors
        dt_dv = DeltaTable(str(with_dv))
        vectors = deleted_positions(dt_dv)
        if night == 0:
            [first_file] = [Path(u).name for u in dt_dv.file_uris()]
            assert vectors == {}
        else:
            assert dt_dv.history(1)[0].get("datacloud.publish") == "deletion_vectors"
            grown.append(len(vectors[first_file]))
            assert len(vectors) >= min(night, 2), "night 1's file got no vector"
        wrong = []
        for name, read in readers.items():
            try:
                _same(f"night {night}: {name}", read(str(with_dv)), twin_rows)
            except AssertionError as e:
                wrong.append(str(e))
        counted = {name: count(str(with_dv)) for name, count in counters.items()}
        wrong += [
            f"night {night}: {n} counts {c}, not {want}" for n, c in counted.items() if c != want
        ]
        assert not wrong, "\n".join(wrong)
        # ClickHouse's trivial counts answer from the log's per-file row counts: the
        # physical rows, deleted ones included (known wrong; docs/curation.md says so)
        physical = _physical_rows(with_dv)
        assert (physical > want) == (night > 0)
        assert _chdb_trivial_counts(with_dv) == [physical] * 4
    assert grown == sorted(set(grown)) and len(grown) == 3, f"first file's vector: {grown}"


@pytest.mark.timeout(120)
def test_the_readers_that_answer_wrongly_or_refuse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After one incremental night: pandas on the folder, ClickHouse's older Delta reader,
    ClickHouse's trivial counts and deltalake's ``count()`` include the deleted rows;
    deltalake's pyarrow dataset (``to_pyarrow_table``, ``to_pandas``) refuses the table. A
    copy-on-write table read as a folder is wrong too: files of earlier versions stay until
    vacuum (``retention_days``)."""
    import pandas as pd
    from deltalake.exceptions import DeltaProtocolError

    monkeypatch.chdir(tmp_path)
    path, twin = tmp_path / "person", tmp_path / "person_cow"
    nights = _nights()[:2]
    for night, (ds, rows, gone) in enumerate(nights):
        for p, dv in ((path, True), (twin, False)):
            _publish_night(p, night, rows, gone, ds, dv)
    live, want = read_table(path).num_rows, _expected(nights)[-1].num_rows  # a failure shows
    assert live == want  # ints and booleans, never rows
    physical = _physical_rows(path)
    assert physical > live
    _, published, gone_keys = nights[1]
    assert gone_keys is not None
    replaced = set(published[KEY].to_pylist())  # published again: old and new rows exist
    deleted = set(gone_keys.to_pylist())

    # pd.read_parquet on the folder reads every Parquet file: deleted and replaced rows too
    for folder in (path, twin):
        frame = pd.read_parquet(folder)
        rows, duplicated = len(frame), int(frame[KEY].duplicated().sum())
        back = deleted <= set(frame[KEY])
        assert rows > live and duplicated > 0 and back, f"{folder.name}: {rows} rows"

    # ClickHouse's older reader ignores the vectors; its trivial counts too (both readers)
    old = _chdb(f"SELECT * FROM deltaLakeLocal('{path}')", kernel=False)
    rows = old.num_rows
    assert rows == physical
    back = set(old[KEY].to_pylist()) >= deleted
    assert back, "the older reader hides the deleted keys"
    per_key = pc.value_counts(old[KEY])
    twice = per_key.filter(pc.greater(per_key.field("counts"), 1)).field("values")
    twice_replaced = set(twice.to_pylist()) <= replaced  # yesterday's row and tonight's
    assert len(twice) > 0 and twice_replaced
    assert _chdb_trivial_counts(path) == [physical] * 4

    # deltalake: count() from the log counts physical rows; the pyarrow dataset refuses
    table = DeltaTable(str(path))
    assert table.count() == physical
    with pytest.raises(DeltaProtocolError, match="deletionVectors"):
        table.to_pyarrow_table()
    with pytest.raises(DeltaProtocolError, match="deletionVectors"):
        table.to_pandas()


def _documented_snippets() -> list[str]:
    """The Python blocks of docs/curation.md's section "Reading the curated tables"."""
    text = (Path(__file__).parents[2] / "docs" / "curation.md").read_text(encoding="utf-8")
    section = text.split("\n## Reading the curated tables\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


@pytest.mark.timeout(300)
def test_the_documented_snippets_read_the_live_rows(tmp_path: Path) -> None:
    """Each snippet of "Reading the curated tables", run as written (its own interpreter,
    the working directory holding ``var/curated/person`` as after ``make demo``, here after
    two nights: deletion vectors in it), prints the number of live persons."""
    table = tmp_path / "var" / "curated" / "person"
    nights = _nights()[:2]
    for night, (ds, rows, gone) in enumerate(nights):
        _publish_night(table, night, rows, gone, ds, True)
    want = _expected(nights)[-1].num_rows
    physical = _physical_rows(table)
    assert physical > want
    snippets = _documented_snippets()
    assert len(snippets) >= 6, "docs/curation.md: the reading snippets are gone"
    wrong = []
    for i, snippet in enumerate(snippets):
        script = tmp_path / f"snippet_{i}.py"  # a file: pyspark looks for SPARK_HOME under -c
        script.write_text(snippet, encoding="utf-8")
        done = subprocess.run(
            [sys.executable, script.name],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        printed = done.stdout.strip().splitlines()[-1:] if done.returncode == 0 else []
        if printed != [str(want)]:
            first = snippet.strip().splitlines()[0]
            tail = done.stderr.strip().splitlines()[-1:]
            wrong.append(
                f"snippet {i} ({first!r}): exit {done.returncode}, printed {printed}, {tail}"
            )
    assert not wrong, "\n".join(wrong)
