"""Dirt: the bad data real department databases hold, applied per row and recorded as truth.

A ``Dirt`` instance is handed clean, canonical columns of one department table and returns the
values to write; every changed field becomes one ground-truth row (dept, table, pk, column,
dirt, dirty, clean). Only the rows a rate selects are touched in Python; the rest stays numpy.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable

import numpy as np
import pyarrow as pa

from datacloud.sample import codes
from datacloud.sample.fmt import format_date, iso, ymd
from datacloud.sample.rates import DirtRates

TRUTH_SCHEMA = pa.schema(
    [
        ("dept", pa.string()),
        ("table", pa.string()),
        ("pk", pa.string()),
        ("column", pa.string()),
        ("dirt", pa.string()),
        ("dirty", pa.string()),
        ("clean", pa.string()),
    ]
)
FULLWIDTH = str.maketrans("0123456789X", "０１２３４５６７８９Ｘ")
DOT_VARIANTS = ("•", "・", ".")
SPACES = (" ", " ", " ", "\u3000")  # mostly ASCII, sometimes the full-width space
Columns = dict[str, np.ndarray]


class Dirt:
    """Applies ``rates`` with its own random stream and collects the ground truth."""

    def __init__(self, rates: DirtRates, rng: np.random.Generator, business_date: dt.date):
        self.rates = rates
        self.rng = rng
        self.business_date = business_date
        self.counts: Counter[str] = Counter()
        self._truth: list[dict[str, np.ndarray]] = []
        self.dept = ""
        self.table = ""

    def fork(self, rng: np.random.Generator) -> Dirt:
        """A Dirt drawing from its own stream that records into this one's ground truth and
        counts: a table added later gets dirt without changing the draws of the others."""
        other = Dirt(self.rates, rng, self.business_date)
        other.counts, other._truth = self.counts, self._truth
        return other

    def at(self, dept: str, table: str) -> Dirt:
        """Name the table the next calls apply to (they record ground truth under it)."""
        self.dept, self.table = dept, table
        return self

    # -- bookkeeping -------------------------------------------------------------------------

    def record(
        self, pk: np.ndarray, column: str, kind: str, dirty: np.ndarray, clean: np.ndarray
    ) -> None:
        if len(pk) == 0:
            return
        n = len(pk)
        self._truth.append(
            {
                "dept": np.full(n, self.dept, dtype=object),
                "table": np.full(n, self.table, dtype=object),
                "pk": _texts(pk),
                "column": np.full(n, column, dtype=object),
                "dirt": np.full(n, kind, dtype=object),
                "dirty": _texts(dirty),
                "clean": _texts(clean),
            }
        )
        self.counts[kind] += n

    def truth(self) -> pa.Table:
        """All recorded dirt, sorted by dept, table, pk, column."""
        if not self._truth:
            return TRUTH_SCHEMA.empty_table()
        arrays = [
            pa.array(np.concatenate([part[name] for part in self._truth]), pa.string())
            for name in TRUTH_SCHEMA.names
        ]
        table = pa.Table.from_arrays(arrays, schema=TRUTH_SCHEMA)
        keys = [("dept", "ascending"), ("table", "ascending"), ("pk", "ascending")]
        return table.sort_by([*keys, ("column", "ascending"), ("dirt", "ascending")])

    def chosen(self, n: int, rate: float, eligible: np.ndarray | None = None) -> np.ndarray:
        mask = self.rng.random(n) < rate
        return mask if eligible is None else mask & eligible

    def _bands(self, n: int, rates: list[float]) -> np.ndarray:
        """Mutually exclusive choice per row: band i with probability rates[i], else -1."""
        weights = np.asarray(rates, dtype=float)
        if weights.sum() > 1.0:
            weights = weights / weights.sum()
        band = np.searchsorted(np.cumsum(weights), self.rng.random(n), side="right")
        return np.where(band < len(rates), band, -1)

    # -- field dirt --------------------------------------------------------------------------

    def _spaces(self, value: str, inner_only: bool = False) -> str:
        rng = self.rng
        space = SPACES[int(rng.integers(len(SPACES)))]
        where = 2 if inner_only or len(value) < 2 else int(rng.integers(4))
        if where == 0:
            return space + value
        if where == 1:
            return value + space
        if where == 3:
            return " " + value + " "
        cut = int(rng.integers(1, len(value))) if len(value) > 1 else 1
        return value[:cut] + space + value[cut:]

    def id_numbers(self, pk: np.ndarray, column: str, ids: np.ndarray) -> np.ndarray:
        """ID numbers as written: wrong check, 15-digit legacy, full-width, spaces, lowercase x.

        Legacy numbers only for persons born 1900-1999; lowercase x only for numbers ending in X.
        """
        r = self.rates
        out = ids.copy()
        band = self._bands(
            len(ids), [r.id_wrong_check, r.id_legacy_15, r.id_fullwidth, r.whitespace]
        )
        born_1900s = np.array([v[6:8] == "19" for v in ids.tolist()], dtype=bool)
        band[(band == 1) & ~born_1900s] = -1
        ends_x = np.array([v[-1] == "X" for v in ids.tolist()], dtype=bool)
        lower = (band == -1) & ends_x & self.chosen(len(ids), r.id_lowercase_x)
        for kind, rows in (
            ("id_wrong_check", band == 0),
            ("id_legacy_15", band == 1),
            ("id_fullwidth", band == 2),
            ("whitespace", band == 3),
            ("id_lowercase_x", lower),
        ):
            idx = np.flatnonzero(rows)
            for i in idx.tolist():
                v = ids[i]
                if kind == "id_wrong_check":
                    wrong = [c for c in codes.ID_CHECK if c != v[17]]
                    out[i] = v[:17] + wrong[int(self.rng.integers(len(wrong)))]
                elif kind == "id_legacy_15":
                    out[i] = v[:6] + v[8:17]
                elif kind == "id_fullwidth":
                    out[i] = v.translate(FULLWIDTH)
                elif kind == "whitespace":
                    out[i] = self._spaces(v)
                else:
                    out[i] = v[:17] + "x"
            self.record(pk[idx], column, kind, out[idx], ids[idx])
        return out

    def credit_codes(
        self, pk: np.ndarray, column: str, credit: np.ndarray, reg: np.ndarray, legacy: np.ndarray
    ) -> np.ndarray:
        """Credit codes as written: wrong check, 注册号 (where ``legacy``), spaces, lowercase."""
        r = self.rates
        out = credit.copy()
        rates = [r.credit_wrong_check, r.legacy_reg_number, r.whitespace, r.credit_lowercase]
        band = self._bands(len(credit), rates)
        band[(band == 1) & ~legacy] = -1
        has_letter = np.array([not v.isdigit() for v in credit.tolist()], dtype=bool)
        band[(band == 3) & ~has_letter] = -1
        kinds = ("credit_wrong_check", "legacy_reg_number", "whitespace", "credit_lowercase")
        for b, kind in enumerate(kinds):
            idx = np.flatnonzero(band == b)
            for i in idx.tolist():
                v = credit[i]
                if b == 0:
                    wrong = [c for c in codes.CREDIT_ALPHABET if c != v[17]]
                    out[i] = v[:17] + wrong[int(self.rng.integers(len(wrong)))]
                elif b == 1:
                    out[i] = reg[i]
                elif b == 2:
                    out[i] = self._spaces(v)
                else:
                    out[i] = v.lower()
            self.record(pk[idx], column, kind, out[idx], credit[idx])
        return out

    def names(
        self,
        pk: np.ndarray,
        column: str,
        names: np.ndarray,
        dotted: np.ndarray,
        exclude: np.ndarray | None = None,
    ) -> np.ndarray:
        """Names as written: a space between characters; dotted names with another dot.

        Rows in ``exclude`` (a conflicting name, already in the ground truth) stay as they are.
        """
        out = names.copy()
        band = self._bands(len(names), [self.rates.whitespace, self.rates.name_dot_variant])
        band[(band == 1) & ~dotted] = -1
        if exclude is not None:
            band[exclude] = -1
        spaced = np.flatnonzero(band == 0)
        for i in spaced.tolist():
            out[i] = self._spaces(names[i], inner_only=True)
        self.record(pk[spaced], column, "whitespace", out[spaced], names[spaced])
        dots = np.flatnonzero(band == 1)
        for i in dots.tolist():
            variant = DOT_VARIANTS[int(self.rng.integers(len(DOT_VARIANTS)))]
            out[i] = names[i].replace("·", variant)
        self.record(pk[dots], column, "name_dot_variant", out[dots], names[dots])
        return out

    def dates(
        self,
        pk: np.ndarray,
        column: str,
        dates: np.ndarray,
        style: str,
        suffix: np.ndarray | None = None,
    ) -> np.ndarray:
        """Dates as text in ``style`` (see fmt.format_date); some impossible (month 13, Feb 30…)."""
        y, m, d = ymd(dates)
        bad = np.flatnonzero(self.chosen(len(dates), self.rates.impossible_date))
        variant = self.rng.integers(0, 5, size=len(bad))
        leap = (y[bad] % 4 == 0) & ((y[bad] % 100 != 0) | (y[bad] % 400 == 0))
        short = np.array([4, 6, 9, 11])[self.rng.integers(0, 4, size=len(bad))]
        m[bad] = np.select([variant == 0, variant == 2, variant == 4], [13, short, m[bad]], 2)
        d[bad] = np.select(
            [variant == 0, variant == 1, variant == 2, variant == 3, variant == 4],
            [np.minimum(d[bad], 28), 30, 31, np.where(leap, 30, 29), 32],
        )
        text = format_date(y, m, d, style)
        if suffix is not None:
            text = text + suffix
        self.record(pk[bad], column, "impossible_date", text[bad], iso(dates[bad]))
        return text

    def nulls(
        self,
        pk: np.ndarray,
        column: str,
        values: np.ndarray,
        canonical: np.ndarray | None = None,
        exclude: np.ndarray | None = None,
    ) -> np.ndarray:
        """Optional values left NULL; ground truth keeps the ``canonical`` form of the value."""
        present = np.array([v is not None for v in values.tolist()], dtype=bool)
        if exclude is not None:
            present &= ~exclude
        idx = np.flatnonzero(self.chosen(len(values), self.rates.null_field, present))
        out = values.copy()
        out[idx] = None
        clean = values if canonical is None else canonical
        self.record(pk[idx], column, "null_field", np.full(len(idx), None), clean[idx])
        return out

    # -- row dirt ----------------------------------------------------------------------------

    def updates(
        self,
        cols: Columns,
        pk: str,
        changes: dict[str, Callable[[np.ndarray], np.ndarray]],
    ) -> dict[str, np.ndarray]:
        """Rows changed on the business date (gxsj that day); one column each, from ``changes``.

        ``changes[column](rows)`` returns new values for those rows, different from the old
        ones. Ground truth: dirty = the old value, clean = the new (written) one. Returns the
        changed rows per column.
        """
        n = len(cols[pk])
        rows = np.flatnonzero(self.chosen(n, self.rates.updated_after_load))
        which = self.rng.integers(0, len(changes), size=len(rows))
        changed = {c: np.zeros(n, dtype=bool) for c in changes}
        for k, (column, new_values) in enumerate(changes.items()):
            idx = rows[which == k]
            old = cols[column][idx].copy()
            cols[column][idx] = new_values(idx)
            changed[column][idx] = True
            self.record(cols[pk][idx], column, "updated_after_load", old, cols[column][idx])
        midnight = np.datetime64(self.business_date.isoformat(), "s")
        seconds = self.rng.integers(6 * 3600, 24 * 3600, size=len(rows))
        cols["gxsj"][rows] = midnight + seconds.astype("timedelta64[s]")
        return changed

    def duplicates(
        self,
        cols: Columns,
        pk: str,
        new_keys: Callable[[np.ndarray], np.ndarray],
        exclude: np.ndarray | None = None,
    ) -> tuple[Columns, np.ndarray]:
        """Some rows entered a second time under a new primary key (``new_keys(originals)``).

        The copies are appended, updated a little later than their original (still before the
        business date), and get their own field dirt afterwards. Returns the new columns and
        the index of the original of each row (itself for originals).
        """
        n = len(cols[pk])
        idx = np.flatnonzero(
            self.chosen(n, self.rates.duplicate_row, None if exclude is None else ~exclude)
        )
        out = {name: np.concatenate([values, values[idx]]) for name, values in cols.items()}
        out[pk][n:] = new_keys(idx)
        midnight = np.datetime64(self.business_date.isoformat(), "s")
        old = cols["gxsj"][idx]
        room = (midnight - old).astype(np.int64)
        out["gxsj"][n:] = old + np.floor(self.rng.random(len(idx)) * room).astype("timedelta64[s]")
        self.record(out[pk][n:], "*", "duplicate_row", out[pk][n:], cols[pk][idx])
        return out, np.concatenate([np.arange(n), idx])


def grow(masks: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    """Row masks extended with False to ``size`` rows (for the appended duplicates)."""
    return {k: np.concatenate([m, np.zeros(size - len(m), dtype=bool)]) for k, m in masks.items()}


def _texts(values: np.ndarray) -> np.ndarray:
    """Values as an object array of str, None kept."""
    return np.array(
        [v if v is None or isinstance(v, str) else str(v) for v in values], dtype=object
    )
