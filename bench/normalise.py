"""Normalising 1M person rows through the full person rule set, against three anchors.

The data: ``rows`` rows of gongan.czrk in the source's raw schema (rkbh, gmsfhm, xm, xb, mz,
csrq, hjdz, lxdh, gxsj), drawn from ``datacloud.sample.generate`` with its default dirt
(wrong check characters, 15-digit IDs, full-width digits, lowercase x, stray spaces, dotted
and spaced names, impossible dates, NULLs, duplicates). Not timed.

* **ours**: ``datacloud.normalise.normalise_table`` with the gongan YAML: every column
  through its normaliser, required columns, the sex/ID cross-check, the accepted / rejected
  split with the issue table, and deduplication on the ID number. From an Arrow table.
* **python**: the same rules as a per-row pure-Python loop (the straightforward code a data
  engineer would write: ``unicodedata``, ``re``, ``datetime``), from the rows as Python
  tuples, as a DB-API cursor returns them. Its accepted rows, rejected keys and duplicate
  count must equal ours (``results_agree``). Target: python ÷ ours ``>= 10``.
* **ge**: Great Expectations 1.x (ephemeral context, progress bars off) validating the
  equivalent expectations on the same rows as a pandas DataFrame, timed from ``run()`` of
  the validation definition, so including GE's batch load. GE checks formats only (a regex
  for the ID number, no check character, no upgrade, nothing cleaned), so this is a lower
  bound for GE doing our work. Target: GE ÷ ours ``>= 10``.
* **copy**: ``COPY (SELECT …) TO STDOUT`` of the same rows from PostgreSQL (127.0.0.1:5432,
  database ``dc_bench_normalise``, created, filled with COPY FROM and dropped here), read by
  psycopg2 into a sink that discards each chunk in C: what getting the rows off the server
  costs at the least. Target: ours ÷ COPY ``<= 1.0``.

Ours and COPY are the best of three runs after a warm-up, GE the best of two after a warm-up;
the Python loop, which takes far longer, one run.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Callable
from datetime import date, datetime
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import pyarrow as pa

from bench import postgres as pg
from bench.harness import Metric, best_of, timed_ratio, write_result

DEPT, TABLE = "gongan", "czrk"
DS = date(2026, 11, 20)
SEED = 7
COLUMNS = ["rkbh", "gmsfhm", "xm", "xb", "mz", "csrq", "hjdz", "lxdh", "gxsj"]
DB = "dc_bench_normalise"
T = TypeVar("T")


# --- the data (not timed) -----------------------------------------------------------------------


def person_rows(rows: int, seed: int = SEED) -> pa.Table:
    """``rows`` rows of czrk from the sample generator, a random subset in generated order.

    The generator appends duplicates after all persons; a random subset (not the first
    ``rows``) keeps their share.
    """
    from datacloud.sample import generate

    czrk = generate(rows, seed, business_date=DS).tables[DEPT][TABLE]
    keep = np.sort(np.random.default_rng(seed).choice(czrk.num_rows, rows, replace=False))
    return czrk.take(pa.array(keep)).select(COLUMNS).combine_chunks()


def department() -> tuple[Any, Any]:
    from datacloud.config import load_departments

    dept = next(d for d in load_departments() if d.code == DEPT)
    return dept, dept.table(TABLE)


# --- ours ---------------------------------------------------------------------------------------


def ours(raw: pa.Table, dept: Any, table: Any) -> Any:
    from datacloud.normalise import normalise_table

    return normalise_table(raw, dept, table, DS)


# --- the same rules, per row in pure Python ---------------------------------------------------


class PythonRules:
    """The person rule set written row by row: what the vectorised normalisers do."""

    ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    ID_CHECK = "10X98765432"
    ID_SEPARATORS = re.compile(r"[\t\n\f\r \-_.\u200b\u200c\u200d\u2060\ufeff]")
    CJK = "[\u3400-\u9fff\uf900-\ufaff]"
    NAME_DOT = re.compile(
        rf"(?<={CJK})\s*[\u00b7\u2022\u2027\u30fb\uff65.\u2219\u22c5]\s*(?={CJK})"
    )
    NAME_SPACE = re.compile(rf"(?<={CJK})\s+(?={CJK})")
    SPACES = re.compile(r"[\t\n\f\r ]+")
    DATE = re.compile(
        r"^(?:(?P<y1>\d{4})\s*[-/.年]\s*(?P<m1>\d{1,2})\s*[-/.月]\s*(?P<d1>\d{1,2})\s*日?"
        r"|(?P<y2>\d{4})(?P<m2>\d{2})(?P<d2>\d{2}))"
        r"(?:(?:\s+|T)\d{1,2}:\d{1,2}(?::\d{1,2}(?:\.\d{1,9})?)?\s*(?:Z|[+-]\d{2}:?\d{2})?)?$"
        r"|^(?P<serial>\d{1,5})(?:\.\d+)?$",
        re.ASCII,
    )
    PHONE_SEPARATORS = re.compile(r"[\s\-()\[\]./]")
    SEX: ClassVar[dict[str, str]] = {
        **{"0": "0", "1": "1", "2": "2", "9": "9", "男": "1", "男性": "1", "女": "2"},
        **{"女性": "2", "m": "1", "f": "2", "male": "1", "female": "2", "未知": "0"},
        **{"未知的性别": "0", "unknown": "0", "未说明": "9", "未说明的性别": "9"},
    }

    def __init__(self, business_date: date) -> None:
        from transforms.codes import PROVINCE_CODES, division_table, ethnicity_table

        self.business_date = business_date
        self.provinces = set(PROVINCE_CODES)
        self.divisions = set(division_table().column("code").to_pylist())
        self.ethnicities: dict[str, str] = {}
        for code, name in zip(*ethnicity_table().to_pydict().values(), strict=True):
            self.ethnicities[name] = self.ethnicities[name.removesuffix("族")] = code
        self.ethnicities |= {"毛难": "36", "其他": "97", "其它": "97", "未识别": "97"}
        self.ethnicities |= {"未识别民族": "97", "其他民族": "97", "外国血统": "98"}
        self.ethnicities |= {"外国人入籍": "98", "入籍": "98"}

    def id_check(self, first17: str) -> str:
        return self.ID_CHECK[
            sum(int(c) * w for c, w in zip(first17, self.ID_WEIGHTS, strict=True)) % 11
        ]

    def id_number(self, raw: str | None) -> tuple[str | None, str | None]:
        if raw is None:
            return None, None
        s = self.ID_SEPARATORS.sub("", unicodedata.normalize("NFKC", raw)).upper()
        if not s:
            return None, None
        if len(s) in (15, 18) and not s.isascii():
            return None, "ID_CHARS"
        legacy = len(s) == 15
        if legacy:
            if not s.isdigit():
                return None, "ID_CHARS"
            s = s[:6] + "19" + s[6:]
            s += self.id_check(s)
        if len(s) != 18:
            return None, "ID_LENGTH"
        if not s[:17].isdigit() or not (s[17].isdigit() or s[17] == "X"):
            return None, "ID_CHARS"
        if self.id_check(s[:17]) != s[17]:
            return None, "ID_CHECK_DIGIT"
        if s[:2] not in self.provinces:
            return None, "ID_PROVINCE"
        try:
            born = date(int(s[6:10]), int(s[10:12]), int(s[12:14]))
        except ValueError:
            return None, "ID_BIRTH_DATE"
        if born < date(1900, 1, 1) or born > self.business_date:
            return None, "ID_BIRTH_DATE"
        if legacy:
            return s, "ID_LEGACY_15"
        return s, None if s[:6] in self.divisions else "ID_COUNTY_HISTORICAL"

    def person_name(self, raw: str | None) -> tuple[str | None, str | None]:
        if raw is None:
            return None, None
        s = unicodedata.normalize("NFKC", raw).strip()
        if not s.isalpha():
            s = self.NAME_SPACE.sub("", self.NAME_DOT.sub("\u00b7", s))
            s = self.SPACES.sub(" ", s).strip()
        if re.search(r"\d", s, re.ASCII):
            return None, "NAME_CHARS"
        if not any(c.isalpha() for c in s):
            return None, "NAME_EMPTY"
        return s, None

    def sex(self, raw: str | None) -> tuple[str | None, str | None]:
        if raw is None or not raw.strip():
            return None, None
        key = unicodedata.normalize("NFKC", raw).strip().lower()
        code = self.SEX.get(key.removesuffix(".0"), self.SEX.get(key))
        return code, None if code else "SEX_UNKNOWN_VALUE"

    def ethnicity(self, raw: str | None) -> tuple[str | None, str | None]:
        if raw is None:
            return None, None
        s = self.ID_SEPARATORS.sub("", unicodedata.normalize("NFKC", raw)).upper()
        if not s:
            return None, None
        digits = re.fullmatch(r"0*(\d{1,2})(?:\.0+)?", s, re.ASCII)
        if digits:
            code: str | None = digits.group(1).zfill(2)
            code = code if code in self.ethnicities.values() else None
        else:
            code = self.ethnicities.get(s) or self.ethnicities.get(s.removesuffix("族"))
        return code, None if code else "ETHNICITY_UNKNOWN"

    def birth_date(self, raw: str | None) -> tuple[date | None, str | None]:
        s = None if raw is None else unicodedata.normalize("NFKC", raw).strip()
        if not s:
            return None, None
        m = self.DATE.match(s)
        if m is None or m["serial"]:
            return None, "DATE_UNPARSEABLE"
        y, mo, d = (int(m[a] or m[b]) for a, b in (("y1", "y2"), ("m1", "m2"), ("d1", "d2")))
        if y == mo == d == 0:
            return None, "DATE_SENTINEL"
        try:
            value = date(y, mo, d)
        except ValueError:
            return None, "DATE_IMPOSSIBLE"
        if value in (date(1900, 1, 1), date(9999, 12, 31)):
            return None, "DATE_SENTINEL"
        if value > self.business_date:
            return None, "DATE_IN_FUTURE"
        return value, None

    def phone(self, raw: str | None) -> tuple[str | None, str | None]:
        s = (
            None
            if raw is None
            else self.PHONE_SEPARATORS.sub("", unicodedata.normalize("NFKC", raw))
        )
        if not s:
            return None, None
        international = re.match(r"(?:\+|00)86", s)
        s = re.sub(r"^(?:\+|00)86", "", s)
        if international and re.fullmatch(r"(?:10|2\d|[3-9]\d{2})[2-9]\d{6,7}", s, re.ASCII):
            s = "0" + s
        s = re.sub(r"^86(1[3-9]\d{9})$", r"\1", s, flags=re.ASCII)
        s = re.sub(r"^(0(?:10|2\d))([2-9]\d{6,7})$", r"\1-\2", s, flags=re.ASCII)
        s = re.sub(r"^(0[3-9]\d{2})([2-9]\d{6,7})$", r"\1-\2", s, flags=re.ASCII)
        if re.fullmatch(r"1[3-9]\d{9}|0\d{2,3}-[2-9]\d{6,7}", s, re.ASCII):
            return s, None
        return None, "PHONE_INVALID"

    def text(self, raw: str | None) -> str | None:
        if raw is None:
            return None
        return self.SPACES.sub(" ", unicodedata.normalize("NFKC", raw)).strip() or None

    REJECT: ClassVar[set[str]] = {
        *("ID_LENGTH", "ID_CHARS", "ID_CHECK_DIGIT", "ID_PROVINCE", "ID_BIRTH_DATE"),
        *("NAME_EMPTY", "NAME_CHARS", "REQUIRED_MISSING"),
        *("DATE_UNPARSEABLE", "DATE_IMPOSSIBLE", "DATE_IN_FUTURE"),
    }

    def table(
        self, rows: list[tuple[Any, ...]]
    ) -> tuple[dict[str, tuple[Any, ...]], set[str], int]:
        """Accepted rows by key, rejected keys and the number of duplicates dropped."""
        kept: dict[str, tuple[Any, ...]] = {}
        rejected: set[str] = set()
        latest: dict[str, tuple[datetime, str]] = {}
        duplicates = 0
        for rkbh, gmsfhm, xm, xb, mz, csrq, hjdz, lxdh, gxsj in rows:
            id_number, id_issue = self.id_number(gmsfhm)
            name, name_issue = self.person_name(xm)
            sex, _ = self.sex(xb)
            born, born_issue = self.birth_date(csrq)
            ethnicity, _ = self.ethnicity(mz)
            phone, _ = self.phone(lxdh)
            issues = {
                id_issue or ("REQUIRED_MISSING" if id_number is None else None),
                name_issue or ("REQUIRED_MISSING" if name is None else None),
                born_issue,
            }
            if issues & self.REJECT:
                rejected.add(rkbh)
                continue
            row = (id_number, name, sex, born, ethnicity, self.text(hjdz), phone, gxsj)
            key = id_number
            assert key is not None
            mark = (gxsj, rkbh)
            if key in latest:
                duplicates += 1
                if mark <= latest[key]:
                    continue
                del kept[latest[key][1]]
            latest[key] = mark
            kept[rkbh] = row
        return kept, rejected, duplicates


def python_loop(rows: list[tuple[Any, ...]]) -> tuple[dict[str, tuple[Any, ...]], set[str], int]:
    return PythonRules(DS).table(rows)


def agree(outcome: Any, loop: tuple[dict[str, tuple[Any, ...]], set[str], int]) -> bool:
    """Same accepted rows (every canonical value), same rejected keys, same duplicate count."""
    kept, rejected, duplicates = loop
    columns = ["id_number", "name", "sex", "birth_date", "ethnicity", "registered_address"]
    accepted = outcome.accepted.select(["_source_pk", *columns, "phone"]).to_pydict()
    ours_rows = {pk: tuple(row) for pk, *row in zip(*accepted.values(), strict=True)}
    theirs = {pk: row[:-1] for pk, row in kept.items()}  # without gxsj
    return (
        ours_rows == theirs
        and set(outcome.rejected["_source_pk"].to_pylist()) == rejected
        and outcome.rows_deduplicated == duplicates
    )


# --- Great Expectations -------------------------------------------------------------------------


def ge_validation(ethnicity_codes: list[str]) -> Any:
    """An ephemeral GE context with the person expectations; returns the validation definition."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    batch = (
        context.data_sources.add_pandas("bench")
        .add_dataframe_asset(TABLE)
        .add_batch_definition_whole_dataframe("night")
    )
    e = gx.expectations
    expectations = [
        e.ExpectColumnValuesToNotBeNull(column="gmsfhm"),
        e.ExpectColumnValuesToMatchRegex(
            column="gmsfhm", regex=r"^\s*(?:[0-9０-９]{17}[0-9０-９XxＸｘ]|[0-9０-９]{15})\s*$"
        ),
        e.ExpectColumnValuesToBeUnique(column="gmsfhm"),
        e.ExpectColumnValuesToNotBeNull(column="xm"),
        e.ExpectColumnValuesToMatchRegex(column="xm", regex=r"^\D*[^\W\d_]\D*$"),
        e.ExpectColumnValuesToBeInSet(column="xb", value_set=["0", "1", "2", "9", "男", "女"]),
        e.ExpectColumnValuesToBeInSet(column="mz", value_set=ethnicity_codes),
        e.ExpectColumnValuesToMatchStrftimeFormat(column="csrq", strftime_format="%Y%m%d"),
        e.ExpectColumnValueLengthsToBeBetween(column="hjdz", min_value=1, max_value=200),
        e.ExpectColumnValuesToMatchRegex(
            column="lxdh", regex=r"^(?:\+?86)?1[3-9]\d{9}$|^0\d{2,3}-?[2-9]\d{6,7}$"
        ),
    ]
    suite = context.suites.add(gx.ExpectationSuite(name=TABLE, expectations=expectations))
    return context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{TABLE}_night", data=batch, suite=suite)
    )


def ge_run(validation: Any, frame: Any) -> Any:
    return validation.run(batch_parameters={"dataframe": frame}, result_format="SUMMARY")


# --- PostgreSQL COPY ----------------------------------------------------------------------------


def load_postgres(raw: pa.Table) -> None:
    """Create the database and czrk (sql/sample/gongan.sql), COPY the rows in, VACUUM."""
    from datacloud.sample.ddl import SQL_DIR

    pg.create_database(DB)
    count = pg.copy_in(DB, (SQL_DIR / f"{DEPT}.sql").read_text(encoding="utf-8"), TABLE, raw)
    assert count == raw.num_rows, (count, raw.num_rows)


def copy_out() -> None:
    pg.copy_out(DB, f"SELECT {', '.join(COLUMNS)} FROM {TABLE}", pg.discard())


# --- the run ------------------------------------------------------------------------------------


def once(fn: Callable[[], T]) -> tuple[float, T]:
    """Seconds of one run, and its result."""
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def run(rows: int = 1_000_000) -> Path:
    from transforms.codes import ethnicity_table

    dept, table = department()
    raw = person_rows(rows)

    outcome = ours(raw, dept, table)  # warm-up, and the result to compare
    ours_s = best_of(lambda: ours(raw, dept, table))
    # Each anchor's input is built just before it runs and dropped after: the 1M row tuples
    # are ten million live Python objects, and every garbage collection during a timed run
    # walks them, whichever contender is running.
    tuples = list(zip(*raw.to_pydict().values(), strict=True))
    python_s, loop = once(partial(python_loop, tuples))
    results_agree = agree(outcome, loop)
    python_counts = {
        "python_accepted": len(loop[0]),
        "python_rejected": len(loop[1]),
        "python_deduplicated": loop[2],
    }
    del tuples, loop
    frame = raw.to_pandas()
    validation = ge_validation(ethnicity_table().column("code").to_pylist())
    validated = ge_run(validation, frame)  # warm-up, as ours had, and the result to report
    ge_s = best_of(lambda: ge_run(validation, frame), repeat=2)
    try:
        load_postgres(raw)
        copy_s = best_of(copy_out)
    finally:
        pg.drop_database(DB)

    metrics = [
        Metric(
            "python_vs_ours",
            round(ours_s, 6),
            "the same rules as a per-row pure-Python loop",
            round(python_s, 6),
            round(python_s / ours_s, 4),
            ">= 10",
        ),
        Metric(
            "ge_vs_ours",
            round(ours_s, 6),
            "Great Expectations 1.x, equivalent expectations on pandas (incl. batch load)",
            round(ge_s, 6),
            round(ge_s / ours_s, 4),
            ">= 10",
        ),
        timed_ratio(
            "ours_vs_copy",
            ours_s,
            "PostgreSQL COPY (SELECT …) TO STDOUT of the same rows, psycopg2, discarding sink",
            copy_s,
            "<= 1.0",
        ),
    ]
    return write_result(
        "normalise",
        raw.num_rows,
        metrics,
        results_agree=results_agree,
        counts={
            "rows_in": outcome.rows_in,
            "accepted": outcome.rows_accepted,
            "rejected": outcome.rows_rejected,
            "deduplicated": outcome.rows_deduplicated,
            **python_counts,
        },
        ge_unexpected={
            r.expectation_config.type + ":" + str(r.expectation_config.kwargs.get("column")): (
                r.result.get("unexpected_count")
            )
            for r in validated.results
        },
        rejections=dict(outcome.rejections),
        warnings=dict(outcome.warnings),
        targets_met={m.metric: m.met() for m in metrics},
    )
