"""Named adapters for department quirks (transforms.adapters)."""

from __future__ import annotations

import contextlib

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.adapters import (
    ADAPTERS,
    apply_adapters,
    decode_gbk,
    digits_only,
    empty_as_null,
    get_adapter,
    null_sentinels,
    strip_excel_apostrophe,
)


def test_registry_names() -> None:
    assert set(ADAPTERS) >= {
        "empty_as_null",
        "strip_excel_apostrophe",
        "decode_gbk",
        "null_sentinels",
        "digits_only",
    }
    assert get_adapter("decode_gbk") is decode_gbk


def test_unknown_adapter_lists_known_ones() -> None:
    with pytest.raises(KeyError, match=r"known adapters: .*decode_gbk"):
        get_adapter("decode_big5")
    with pytest.raises(KeyError, match="decode_big5"):
        apply_adapters(pa.array(["x"]), ["empty_as_null", "decode_gbk", "decode_big5"])


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", None),
        ("   ", None),
        ("\t\n", None),
        ("\u3000", None),  # full-width space
        ("\u00a0 ", None),  # no-break space
        ("\u200b", None),  # zero-width space
        ("\ufeff", None),  # byte-order mark
        (None, None),
        (" 张三 ", " 张三 "),  # not trimmed: that is the normaliser's job
        ("0", "0"),
        ("-", "-"),
    ],
)
def test_empty_as_null(raw: str | None, expected: str | None) -> None:
    assert empty_as_null(pa.array([raw], pa.string())).to_pylist() == [expected]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("'330106198001010012", "330106198001010012"),
        ("  '0571-88888888", "  0571-88888888"),
        ("''12", "'12"),  # only the one the spreadsheet added
        ("O'Brien", "O'Brien"),
        ("12'", "12'"),
        ("'", ""),
        ("330106198001010012", "330106198001010012"),
        (None, None),
    ],
)
def test_strip_excel_apostrophe(raw: str | None, expected: str | None) -> None:
    assert strip_excel_apostrophe(pa.array([raw], pa.string())).to_pylist() == [expected]


@pytest.mark.parametrize(
    "raw",
    [
        *("NULL", "null", " Null ", "None", "NaN", "\\N", "N/A", "n/a", "#N/A", "无", "暂无", "空"),
        *("-", "--", "—", "/", "\\", "－", "／", "ＮＵＬＬ", "\u3000无\u3000"),
    ],
)
def test_null_sentinels(raw: str) -> None:
    assert null_sentinels(pa.array([raw])).to_pylist() == [None]


@pytest.mark.parametrize("raw", ["无锡市", "张无忌", "-1", "0", "N", "Nancy", "1/2", "", " "])
def test_null_sentinels_keeps_real_values(raw: str) -> None:
    assert null_sentinels(pa.array([raw])).to_pylist() == [raw]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0571-8888 8888", "057188888888"),
        ("电话：138 1234 5678", "13812345678"),
        ("１３８１２３４５６７８", "13812345678"),  # full-width digits
        ("+86 (571) 8888-8888", "8657188888888"),
        ("无", None),
        ("", None),
        (None, None),
    ],
)
def test_digits_only(raw: str | None, expected: str | None) -> None:
    assert digits_only(pa.array([raw], pa.string())).to_pylist() == [expected]


def test_digits_only_casts_integers() -> None:
    assert digits_only(pa.array([13812345678, None], pa.int64())).to_pylist() == [
        "13812345678",
        None,
    ]


GBK_VALUES = ["张三", "阿依古丽·买买提", "浙江省杭州市西湖区文三路123号", "ABC-123", "", "𠮷"]


@pytest.mark.parametrize("binary_type", [pa.binary(), pa.large_binary(), pa.binary_view()])
def test_decode_gbk(binary_type: pa.DataType) -> None:
    raw = [v.encode("gb18030") for v in GBK_VALUES] + [None, b"\xff\xfe\x80", b"ok"]
    out = decode_gbk(pa.array(raw, binary_type))
    assert out.type == pa.string()
    # bytes neither GBK nor GB 18030 decode stay visible as escapes after the mark
    assert out.to_pylist() == [*GBK_VALUES, None, "\ufffd\\xFF䜣", "ok"]
    out.validate(full=True)  # valid UTF-8 throughout


def test_decode_gbk_ascii_only_and_strings_pass_through() -> None:
    assert decode_gbk(pa.array([b"330106", None], pa.binary())).to_pylist() == ["330106", None]
    text = pa.array(["张三", None], pa.large_string())
    out = decode_gbk(text)
    assert out.type == pa.string()
    assert out.to_pylist() == ["张三", None]


def test_decode_gbk_fixed_size_and_chunked() -> None:
    fixed = pa.array(["张三".encode("gbk"), "李四".encode("gbk")], pa.binary(4))
    assert decode_gbk(fixed).to_pylist() == ["张三", "李四"]
    chunked = pa.chunked_array([pa.array([b"a"]), pa.array(["王".encode("gbk")])])
    assert decode_gbk(chunked).to_pylist() == ["a", "王"]


def test_decode_gbk_decodes_each_distinct_value_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import transforms.adapters as adapters

    calls: list[bytes] = []
    real = adapters._decode

    def counting(value: bytes) -> str | None:
        calls.append(value)
        return real(value)

    monkeypatch.setattr(adapters, "_decode", counting)
    raw = pa.array(["张三".encode("gbk"), "李四".encode("gbk")] * 5_000 + [b"x"] * 10)
    out = decode_gbk(raw)
    assert len(out) == 10_010
    assert sorted(calls) == sorted(["张三".encode("gbk"), "李四".encode("gbk")])


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_other_types_pass_through(name: str) -> None:
    dates = pa.array([0, None], pa.int32()).view(pa.date32())
    assert ADAPTERS[name](dates).equals(dates)


@pytest.mark.parametrize("name", sorted(set(ADAPTERS) - {"decode_gbk"}))
def test_text_adapters_leave_binary_alone(name: str) -> None:
    raw = pa.array(["张三".encode("gbk"), None], pa.binary())
    assert ADAPTERS[name](raw).equals(raw)


def test_apply_adapters_in_order() -> None:
    raw = pa.array(["'0571-88888888".encode("gbk"), "无".encode("gbk"), b"  ", None])
    out = apply_adapters(raw, ["decode_gbk", "null_sentinels", "empty_as_null"])
    assert out.to_pylist() == ["'0571-88888888", None, None, None]
    out = apply_adapters(raw, ["decode_gbk", "strip_excel_apostrophe", "digits_only"])
    assert out.to_pylist() == ["057188888888", None, None, None]


TEXT = st.one_of(st.none(), st.text(max_size=40))


@pytest.mark.parametrize("name", sorted(ADAPTERS))
@settings(max_examples=60, deadline=None)
@given(values=st.lists(TEXT, max_size=20))
def test_any_text_any_adapter(name: str, values: list[str | None]) -> None:
    out = ADAPTERS[name](pa.array(values, pa.string()))
    assert len(out) == len(values)
    assert out.type == pa.string()
    out.validate(full=True)


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.one_of(st.none(), st.binary(max_size=12)), max_size=20))
def test_decode_gbk_any_bytes(values: list[bytes | None]) -> None:
    out = decode_gbk(pa.array(values, pa.binary()))
    assert len(out) == len(values)
    out.validate(full=True)
    for raw, text in zip(values, out.to_pylist(), strict=True):
        if raw is None:
            assert text is None
        elif text is not None and "\ufffd\\x" in text:  # an undecodable byte, escaped
            assert text.count("\ufffd\\x") <= len(raw)
        elif text is not None:  # decoded: encoding it again gives the bytes back
            encodings = set()
            for codec in ("gbk", "gb18030"):
                with contextlib.suppress(UnicodeEncodeError):
                    encodings.add(text.encode(codec))
            assert raw in encodings
