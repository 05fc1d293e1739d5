"""Small Arrow/numpy helpers shared by the normalisers (not part of the public API)."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from transforms.result import Normalised

# Characters removed anywhere inside an identifier: whitespace, '-', '_', '.', zero-width
# spaces and the BOM. Full-width forms are mapped to these by NFKC first.
_ID_SEPARATORS = r"[\s\-_.\x{200b}\x{200c}\x{200d}\x{2060}\x{feff}]"


def as_string_array(raw: pa.Array | pa.ChunkedArray) -> pa.StringArray:
    """Return ``raw`` as one contiguous ``pa.string()`` array (casting other types)."""
    arr = raw.combine_chunks() if isinstance(raw, pa.ChunkedArray) else raw
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if not pa.types.is_string(arr.type):
        arr = pc.cast(arr, pa.string())
    return arr


def nfkc(arr: pa.StringArray) -> pa.StringArray:
    """Unicode NFKC (full-width to half-width etc.), only touching rows that are not ASCII."""
    ascii_mask = pc.string_is_ascii(arr)
    if pc.all(ascii_mask).as_py() in (True, None):
        return arr
    not_ascii = pc.invert(ascii_mask)
    normalised = pc.utf8_normalize(pc.filter(arr, not_ascii), form="NFKC")
    return pc.replace_with_mask(arr, not_ascii.fill_null(False), normalised)


def blank_to_null(arr: pa.StringArray) -> pa.StringArray:
    """Null where the string is empty."""
    return pc.if_else(pc.equal(pc.binary_length(arr), 0), None, arr)


def trimmed(raw: pa.Array | pa.ChunkedArray) -> pa.StringArray:
    """String array, NFKC-normalised and trimmed, with blank strings as null."""
    return blank_to_null(pc.utf8_trim_whitespace(nfkc(as_string_array(raw))))


def compact_identifier(raw: pa.Array | pa.ChunkedArray) -> pa.StringArray:
    """Identifier cleaning: NFKC, drop whitespace and separators anywhere, upper-case.

    Blank (or separator-only) strings become null.
    """
    arr = as_string_array(raw)
    # ASCII letters and digits only (nearly every row): upper-casing is all there is to do.
    # The other rows go through NFKC, separator removal and upper-casing, repeated until
    # nothing changes: removing a separator can join a combining mark to a letter ("A´"
    # → "A" U+0301), and upper-casing NFKC text can give text NFKC changes again, so that
    # one round would not be idempotent. Such leftovers are never valid identifiers.
    plain = pc.and_(pc.string_is_ascii(arr), pc.ascii_is_alnum(arr)).fill_null(True)
    out = pc.ascii_upper(arr)
    if not pc.all(plain).as_py():
        dirty = pc.invert(plain)
        out = pc.replace_with_mask(out, dirty, _settle(pc.filter(arr, dirty)))
    return blank_to_null(out)


def _settle(arr: pa.StringArray, rounds: int = 4) -> pa.StringArray:
    """Apply NFKC, separator removal and upper-casing until nothing changes."""
    for _ in range(rounds):
        again = pc.utf8_normalize(arr, form="NFKC")
        again = pc.utf8_upper(pc.replace_substring_regex(again, _ID_SEPARATORS, ""))
        if again.equals(arr):
            break
        arr = again
    return arr


def fixed_width_matrix(arr: pa.StringArray, width: int) -> np.ndarray:
    """Bytes of a string array whose values all have ``width`` bytes, as an (n, width) matrix.

    The array must have no nulls. The result is a read-only view where possible.
    """
    n = len(arr)
    if n == 0:
        return np.zeros((0, width), dtype=np.uint8)
    _, offsets_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int32, count=n + 1, offset=arr.offset * 4)
    start = int(offsets[0])
    if int(offsets[-1]) - start != n * width:
        raise ValueError(f"not all values have {width} bytes")
    data = np.frombuffer(data_buf, dtype=np.uint8, count=n * width, offset=start)
    return data.reshape(n, width)


def matrix_to_strings(mat: np.ndarray) -> pa.StringArray:
    """Inverse of ``fixed_width_matrix``: an (n, width) ASCII byte matrix to a string array."""
    n, width = mat.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    data = np.ascontiguousarray(mat, dtype=np.uint8)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def take_or_null(values: pa.Array, positions: np.ndarray) -> pa.Array:
    """``values[positions]`` with null wherever ``positions`` is negative."""
    idx = pa.array(positions, type=pa.int64(), mask=positions < 0)
    return pc.take(values, idx)


def issues_array(codes: np.ndarray, names: Sequence[str]) -> pa.StringArray:
    """Build the ``issues`` column from small ints: -1 means no issue, k means ``names[k]``."""
    indices = pa.array(codes.astype(np.int32), mask=codes < 0)
    dictionary = pa.array(list(names), type=pa.string())
    return pa.DictionaryArray.from_arrays(indices, dictionary).dictionary_decode()


def first_issue(n: int, checks: Sequence[tuple[np.ndarray, int]]) -> np.ndarray:
    """Per row, the code of the first check whose mask is true (-1 when none is)."""
    codes = np.full(n, -1, dtype=np.int8)
    for mask, code in reversed(checks):
        codes[mask] = code
    return codes


def bool_np(arr: pa.Array) -> np.ndarray:
    """A boolean Arrow array as a numpy bool array, nulls as False."""
    return np.asarray(arr.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def days_from_civil(y: np.ndarray, m: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 for proleptic Gregorian dates (vectorised, H. Hinnant)."""
    y = y.astype(np.int64) - (m <= 2)
    era = np.floor_divide(y, 400)
    yoe = y - era * 400
    mp = (m.astype(np.int64) + 9) % 12
    doy = (153 * mp + 2) // 5 + d.astype(np.int64) - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def valid_ymd(y: np.ndarray, m: np.ndarray, d: np.ndarray) -> np.ndarray:
    """True where year ≥ 1, month 1-12 and the day exists in that month (leap years included)."""
    leap = ((y % 4 == 0) & (y % 100 != 0)) | (y % 400 == 0)
    dim = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)
    month_ok = (m >= 1) & (m <= 12)
    days = dim[np.where(month_ok, m, 0)] + ((m == 2) & leap)
    return (y >= 1) & month_ok & (d >= 1) & (d <= days)


def epoch_days(day: datetime.date) -> int:
    return (day - datetime.date(1970, 1, 1)).days


def date32_array(days: np.ndarray, valid: np.ndarray) -> pa.Array:
    """A ``pa.date32()`` array from days since the epoch, null where ``valid`` is false."""
    return pa.array(days.astype(np.int32), mask=~valid).view(pa.date32())


def via_distinct(arr: pa.StringArray, fn: Callable[[pa.StringArray], Normalised]) -> Normalised:
    """``fn`` applied to the distinct values of ``arr`` only, its output spread back by index.

    For columns whose values repeat (dates, names, codes), hashing once is cheaper than
    running the rules on every row. ``fn`` must treat each value on its own.
    """
    encoded = pc.dictionary_encode(arr)
    out = fn(encoded.dictionary)
    idx = encoded.indices
    return Normalised(
        values=out.values.take(idx),
        issues=out.issues.take(idx),
        extras={name: extra.take(idx) for name, extra in out.extras.items()},
    )


def map_distinct(
    arr: pa.StringArray, mapping: Callable[[str], str | None], out_type: pa.DataType
) -> pa.Array:
    """Apply a Python function to each *distinct* value (for low-cardinality columns)."""
    encoded = pc.dictionary_encode(arr)
    mapped = pa.array([mapping(v) for v in encoded.dictionary.to_pylist()], type=out_type)
    return pc.take(mapped, encoded.indices)


def lookup_codes(
    cleaned: pa.StringArray, mapping: Callable[[str], str | None], unknown_rule: str
) -> Normalised:
    """A code-table lookup: each distinct value mapped once; a value the table does not know
    becomes null with the (warn) rule ``unknown_rule``; null stays null with no issue."""
    values = map_distinct(cleaned, mapping, pa.string())
    unknown = bool_np(pc.and_(cleaned.is_valid(), values.is_null()))
    codes = np.where(unknown, 0, -1).astype(np.int8)
    return Normalised(values=values, issues=issues_array(codes, [unknown_rule]))


def identifier_shape(
    cleaned: pa.StringArray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per value of a cleaned identifier column: present, length in characters, length in
    bytes, and whether it is all ASCII (the only values a fixed-width check can read)."""
    present = bool_np(cleaned.is_valid())
    n_chars = pc.utf8_length(cleaned).fill_null(0).to_numpy()
    n_bytes = pc.binary_length(cleaned).fill_null(0).to_numpy()
    return present, n_chars, n_bytes, n_chars == n_bytes
