"""Named adapters for department quirks, applied to a raw column before its normaliser.

A department YAML lists adapters by name (``adapters: [decode_gbk, null_sentinels]``); they
run in that order on the extracted column, then the column's normaliser runs. Each adapter is
a pure function ``pa.Array → pa.Array`` of the same length: string-like input (string,
large_string, string_view, dictionary of strings) comes out as ``pa.string()``, and a value
an adapter cannot make sense of becomes null rather than raising. Types an adapter has
nothing to do with (numbers, dates, and binary for every adapter but ``decode_gbk``) are
returned unchanged, so the order ``decode_gbk`` first, then the text adapters, always works.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from transforms._arrow import as_string_array, blank_to_null, nfkc

Adapter = Callable[[pa.Array], pa.Array]

# RE2's \s is ASCII only: \pZ adds the Unicode spaces (U+3000, U+00A0, …); zero-width
# spaces, the word joiner and the BOM are invisible in a spreadsheet cell, so blank too.
_BLANK = r"^[\s\pZ\x{85}\x{200b}\x{200c}\x{200d}\x{2060}\x{feff}]*$"
# Compared after NFKC, trimming and lower-casing.
NULL_SENTINELS: frozenset[str] = frozenset(
    {
        "null",
        "none",
        "nil",
        "nan",
        "\\n",
        "n/a",
        "#n/a",
        "无",
        "暂无",
        "空",
        "-",
        "--",
        "---",
        "—",
        "——",
        "/",
        "\\",
    }
)


def _combined(raw: pa.Array | pa.ChunkedArray) -> pa.Array:
    arr = raw.combine_chunks() if isinstance(raw, pa.ChunkedArray) else raw
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    return arr


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _is_binary(t: pa.DataType) -> bool:
    return (
        pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_fixed_size_binary(t)
        or pa.types.is_binary_view(t)
    )


def _text_or_none(raw: pa.Array | pa.ChunkedArray) -> pa.StringArray | None:
    arr = _combined(raw)
    return as_string_array(arr) if _is_text(arr.type) else None


def empty_as_null(raw: pa.Array) -> pa.Array:
    """Blank text to null: '' and values of only whitespace (U+3000 and zero-width included).

    Input: a string-like array. Output: ``pa.string()``, other values unchanged (not trimmed).
    """
    arr = _text_or_none(raw)
    if arr is None:
        return _combined(raw)
    blank = pc.match_substring_regex(arr, _BLANK)
    return pc.if_else(blank, pa.scalar(None, pa.string()), arr)


def strip_excel_apostrophe(raw: pa.Array) -> pa.Array:
    """Drop the leading ``'`` a spreadsheet adds to keep digits as text ("'330106…").

    Input: a string-like array. Output: ``pa.string()`` with one apostrophe removed where it
    is the first character after any leading whitespace; other values unchanged.
    """
    arr = _text_or_none(raw)
    if arr is None:
        return _combined(raw)
    return pc.replace_substring_regex(arr, r"^(\s*)'", r"\1", max_replacements=1)


# An undecodable byte becomes ENCODING_MARK followed by its escape, "\ufffd\\xFF": the
# value stays text, the department sees which byte it was, and the pipeline rejects every
# value holding the mark (rule ENCODING_INVALID).
ENCODING_MARK = "\ufffd"
ESCAPE_ERRORS = "datacloud_escape"


def _escape_bytes(e: UnicodeError) -> tuple[str, int]:
    if not isinstance(e, UnicodeDecodeError):
        raise e
    bad = e.object[e.start : e.end]
    return "".join(f"{ENCODING_MARK}\\x{b:02X}" for b in bad), e.end


codecs.register_error(ESCAPE_ERRORS, _escape_bytes)


def decode_escaped(value: bytes, encoding: str = "utf-8") -> str:
    """``value`` decoded; each byte invalid in ``encoding`` as ``\ufffd\\xNN`` (never raises)."""
    return value.decode(encoding, errors=ESCAPE_ERRORS)


def _decode(value: bytes) -> str:
    for codec in ("gbk", "gb18030"):  # GB 18030 adds the 4-byte characters GBK lacks
        try:
            return value.decode(codec)
        except UnicodeDecodeError:
            continue
    return decode_escaped(value, "gb18030")


def decode_gbk(raw: pa.Array) -> pa.Array:
    """Decode GBK-encoded bytes (as legacy Chinese databases store text) to UTF-8 strings.

    Input: ``pa.binary()``, ``large_binary``, ``fixed_size_binary`` or ``binary_view``; a
    string-like array is already decoded and passes through as ``pa.string()``. Output:
    ``pa.string()``. ASCII values are copied as they are; every distinct non-ASCII value is
    decoded once as GBK (or GB 18030, its superset, for 4-byte characters such as 𠮷); a
    byte that neither can decode becomes ``\ufffd\\xNN`` (``decode_escaped``), which the
    pipeline rejects as ENCODING_INVALID instead of loading an empty value.
    """
    arr = _combined(raw)
    if _is_text(arr.type):
        return as_string_array(arr)
    if not _is_binary(arr.type):
        return arr
    if not pa.types.is_binary(arr.type):
        arr = pc.cast(arr, pa.binary())
    as_text = arr.view(pa.string())  # not valid UTF-8 yet: only ASCII rows are used as is
    non_ascii = pc.invert(pc.string_is_ascii(as_text)).fill_null(False)
    if not pc.any(non_ascii).as_py():
        return as_text
    encoded = pc.dictionary_encode(pc.filter(arr, non_ascii))
    decoded = pa.array([_decode(v) for v in encoded.dictionary.to_pylist()], pa.string())
    return pc.replace_with_mask(as_text, non_ascii, decoded.take(encoded.indices))


def null_sentinels(raw: pa.Array) -> pa.Array:
    """Placeholder text to null: 'NULL', 'null', 'None', 'N/A', '\\N', '无', '暂无', '-', '/', ….

    Input: a string-like array. A value is a placeholder when, after NFKC (full-width to
    half-width), trimming and lower-casing, it is in ``NULL_SENTINELS``. Output:
    ``pa.string()``, other values unchanged.
    """
    arr = _text_or_none(raw)
    if arr is None:
        return _combined(raw)
    key = pc.utf8_lower(pc.utf8_trim_whitespace(nfkc(arr)))
    sentinel = pc.is_in(key, value_set=pa.array(sorted(NULL_SENTINELS), pa.string()))
    return pc.if_else(sentinel, pa.scalar(None, pa.string()), arr)


def digits_only(raw: pa.Array) -> pa.Array:
    """Keep only the digits (full-width digits become ASCII), e.g. "电话：0571-8888 8888".

    Input: a string-like array (numbers are cast). Output: ``pa.string()`` of ASCII digits,
    null where no digit is left. Not for ID numbers or credit codes (it drops their letters).
    """
    arr = _combined(raw)
    if pa.types.is_integer(arr.type):
        arr = pc.cast(arr, pa.string())
    text = _text_or_none(arr)
    if text is None:
        return arr
    return blank_to_null(pc.replace_substring_regex(nfkc(text), r"[^0-9]+", ""))


ADAPTERS: dict[str, Adapter] = {
    "empty_as_null": empty_as_null,
    "strip_excel_apostrophe": strip_excel_apostrophe,
    "decode_gbk": decode_gbk,
    "null_sentinels": null_sentinels,
    "digits_only": digits_only,
}


def get_adapter(name: str) -> Adapter:
    """The adapter registered under ``name``; KeyError listing the known names."""
    try:
        return ADAPTERS[name]
    except KeyError:
        known = ", ".join(sorted(ADAPTERS))
        raise KeyError(f"unknown adapter {name!r}; known adapters: {known}") from None


def apply_adapters(raw: pa.Array, names: list[str] | tuple[str, ...]) -> pa.Array:
    """Apply the named adapters in order (KeyError for an unknown name, before any runs)."""
    adapters = [get_adapter(n) for n in names]
    out = _combined(raw)
    for adapter in adapters:
        out = adapter(out)
    return out
