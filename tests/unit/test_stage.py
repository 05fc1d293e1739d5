"""Two nights of one department table through extract and stage (SQLite source, real Delta)."""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

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
    nightly.extract("gongan", "czrk", d1, url)
    first = nightly.stage("gongan", "czrk", d1, "night-1")
    assert (first["rows_in"], first["rows_accepted"]) == (3, 3)

    broken = B[:-1] + ("0" if B[-1] != "0" else "1")  # RK2 mistyped tonight: rejected
    _night(db, [_row("RK1", A, "张三丰", "2026-11-20 09:00:00"), _row("RK2", broken, "李四")])
    nightly.extract("gongan", "czrk", d2, url)
    second = nightly.stage("gongan", "czrk", d2, "night-2")
    assert (second["rows_in"], second["rows_accepted"], second["rows_rejected"]) == (2, 1, 1)

    staged = {
        r["_source_pk"]: r for r in read_table(storage_root.staged("gongan", "czrk")).to_pylist()
    }
    assert set(staged) == {"RK1", "RK2"}  # RK3 vanished from the snapshot: deleted
    assert staged["RK1"]["name"] == "张三丰" and staged["RK1"]["_ds"] == d2
    assert staged["RK2"]["id_number"] == B and staged["RK2"]["_ds"] == d1  # yesterday's good row

    report = nightly.report("gongan", d2)
    assert report["status"] == "success"
    csv = (storage_root.report_dir("gongan", d2) / "rejected.csv").read_text(encoding="utf-8-sig")
    assert f"czrk:RK2,id_number,gmsfhm,{broken},ID_CHECK_DIGIT" in csv
