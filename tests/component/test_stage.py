"""Two nights of one department table through extract and stage (SQLite source, real Delta)."""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

from helpers import use_incremental_gongan

from datacloud import nightly
from datacloud.delta import read_table
from datacloud.paths import SQL_DIR, StorageRoot
from transforms.id_number import id_check_char


def _id(first17: str) -> str:
    return first17 + id_check_char(first17)


A, B, C = _id("33010619800101001"), _id("33010619900202002"), _id("33010619751231003")
DDL = (SQL_DIR / "sample" / "gongan.sql").read_text(encoding="utf-8")


def _night(db: Path, rows: list[tuple]) -> None:
    con = sqlite3.connect(db)
    con.executescript("DROP TABLE IF EXISTS czrk;\n" + DDL)
    con.executemany(
        "INSERT INTO czrk (rkbh, gmsfhm, xm, xb, mz, csrq, hjdz, lxdh, gxsj) VALUES (?,?,?,?,?,?,?,?,?)",
        rows,
    )
    con.commit()
    con.close()


def _row(pk: str, id_number: str, name: str, when: str = "2026-11-01 08:00:00") -> tuple:
    return (pk, id_number, name, "1", "01", id_number[6:14], "杭州市", None, when)


def test_full_snapshot_deletes_vanished_keys_but_not_rejected_ones(
    storage_root: StorageRoot, tmp_path: Path
) -> None:
    db = tmp_path / "gongan.db"
    url = f"sqlite:///{db}"
    d1, d2 = date(2026, 11, 19), date(2026, 11, 20)
    _night(db, [_row("RK1", A, "张三"), _row("RK2", B, "李四"), _row("RK3", C, "王五")])
    nightly.extract(StorageRoot.from_env(), nightly.department("gongan"), "czrk", d1, url)
    first = nightly.stage(
        StorageRoot.from_env(), nightly.department("gongan"), "czrk", d1, "night-1"
    )
    assert (first["rows_in"], first["rows_accepted"]) == (3, 3)

    broken = B[:-1] + ("0" if B[-1] != "0" else "1")  # RK2 mistyped tonight: rejected
    _night(db, [_row("RK1", A, "张三丰", "2026-11-20 09:00:00"), _row("RK2", broken, "李四")])
    nightly.extract(StorageRoot.from_env(), nightly.department("gongan"), "czrk", d2, url)
    second = nightly.stage(
        StorageRoot.from_env(), nightly.department("gongan"), "czrk", d2, "night-2"
    )
    assert (second["rows_in"], second["rows_accepted"], second["rows_rejected"]) == (2, 1, 1)

    staged = {
        r["_source_pk"]: r for r in read_table(storage_root.staged("gongan", "czrk")).to_pylist()
    }
    assert set(staged) == {"RK1", "RK2"}  # RK3 vanished from the snapshot: deleted
    assert staged["RK1"]["name"] == "张三丰" and staged["RK1"]["_ds"] == d2
    assert staged["RK2"]["id_number"] == B and staged["RK2"]["_ds"] == d1  # yesterday's good row

    report = nightly.report(StorageRoot.from_env(), nightly.department("gongan"), d2)
    assert report["status"] == "success"
    csv = (storage_root.report_dir("gongan", d2) / "rejected.csv").read_text(encoding="utf-8-sig")
    assert f"czrk:RK2,id_number,gmsfhm,{broken},ID_CHECK_DIGIT" in csv


def _one_row_per_business_key(root: StorageRoot) -> dict[str, str]:
    """Staged source key → ID number, asserting no ID number is staged twice."""
    rows = read_table(root.staged("gongan", "czrk"), ["_source_pk", "id_number"]).to_pylist()
    ids = [r["id_number"] for r in rows]
    assert len(ids) == len(set(ids)), f"a business key staged twice: {sorted(ids)}"
    return {r["_source_pk"]: r["id_number"] for r in rows}


def _reconciles(out: dict) -> None:
    assert out["rows_in"] == out["rows_accepted"] + out["rows_rejected"] + out["rows_deduplicated"]


def test_full_snapshot_winner_deleted_then_back_keeps_one_row_per_business_key(
    storage_root: StorageRoot, tmp_path: Path
) -> None:
    """RK1 and RK2 carry the same ID number; RK1 (updated later) wins. Night 2 deletes RK1,
    so RK2 is staged; night 3 brings RK1 back: RK2 loses again and leaves staged."""
    db = tmp_path / "gongan.db"
    url = f"sqlite:///{db}"
    nights = [
        [
            _row("RK1", A, "张三", "2026-11-10 09:00:00"),
            _row("RK2", A, "张叁"),
            _row("RK3", C, "王五"),
        ],
        [_row("RK2", A, "张叁"), _row("RK3", C, "王五")],
        [
            _row("RK1", A, "张三", "2026-11-10 09:00:00"),
            _row("RK2", A, "张叁"),
            _row("RK3", C, "王五"),
        ],
    ]
    expected = [{"RK1": A, "RK3": C}, {"RK2": A, "RK3": C}, {"RK1": A, "RK3": C}]
    for i, (rows, want) in enumerate(zip(nights, expected, strict=True)):
        ds = date(2026, 11, 18 + i)
        _night(db, rows)
        nightly.extract(StorageRoot.from_env(), nightly.department("gongan"), "czrk", ds, url)
        out = nightly.stage(
            StorageRoot.from_env(), nightly.department("gongan"), "czrk", ds, f"night-{i + 1}"
        )
        _reconciles(out)
        assert out["rows_deduplicated"] == (0 if i == 1 else 1)
        assert _one_row_per_business_key(storage_root) == want, f"night {i + 1}"
        report = nightly.report(StorageRoot.from_env(), nightly.department("gongan"), ds)
        assert report["status"] == "success"


def test_incremental_new_source_key_replaces_the_staged_row_of_its_business_key(
    storage_root: StorageRoot, tmp_path: Path, repo: Path, monkeypatch
) -> None:
    """An incremental table (gongan.czrk switched to incremental on gxsj): a row accepted
    tonight replaces any staged row with its ID number under another source key."""
    use_incremental_gongan(tmp_path, repo, monkeypatch)
    assert nightly.department("gongan").table("czrk").mode == "incremental"

    db = tmp_path / "gongan.db"
    url = f"sqlite:///{db}"
    d1, d2, d3 = date(2026, 11, 18), date(2026, 11, 19), date(2026, 11, 20)
    rk1 = _row("RK1", A, "张三", "2026-11-18 09:00:00")
    rk2 = _row("RK2", A, "张叁", "2026-11-19 09:00:00")  # the same person, a new source key
    rk3 = _row("RK3", C, "王五", "2026-11-18 10:00:00")
    rk1_back = _row("RK1", A, "张三", "2026-11-20 09:00:00")
    nights = [(d1, [rk1, rk3]), (d2, [rk1, rk2, rk3]), (d3, [rk1_back, rk2, rk3])]
    expected = [{"RK1": A, "RK3": C}, {"RK2": A, "RK3": C}, {"RK1": A, "RK3": C}]
    for i, ((ds, rows), want) in enumerate(zip(nights, expected, strict=True)):
        _night(db, rows)
        nightly.extract(StorageRoot.from_env(), nightly.department("gongan"), "czrk", ds, url)
        out = nightly.stage(
            StorageRoot.from_env(), nightly.department("gongan"), "czrk", ds, f"night-{i + 1}"
        )
        _reconciles(out)
        assert out["rows_in"] == (2 if i == 0 else 1)  # only the night's window is read
        assert _one_row_per_business_key(storage_root) == want, f"night {i + 1}"
