"""Masking of ID numbers, names and phones: scalar and vectorised agree, nothing leaks."""

from __future__ import annotations

import re

import pyarrow as pa
import pytest

from datacloud.masking import mask_id_number, mask_name, mask_phone, mask_text
from transforms.id_number import id_check_char, is_valid_id_number

ID = "33010619800101001" + id_check_char("33010619800101001")
ID_X = next(
    f"11010119900307{k:03d}" + id_check_char(f"11010119900307{k:03d}")
    for k in range(1000)
    if id_check_char(f"11010119900307{k:03d}") == "X"
)

ID_CASES = [
    (ID, ID[:6] + "********" + ID[-4:]),
    (ID_X, ID_X[:6] + "********" + ID_X[-4:]),
    (f"  {ID}  ", ID[:6] + "********" + ID[-4:]),
    ("330106800101001", "330106********1001"),  # legacy 15 digits: same shape
    ("33010619800", "330106********9800"),  # 11 characters: still 6 + 4 shown
    ("3301061980", "**********"),  # too short to show anything
    ("", ""),
    (None, None),
]
NAME_CASES = [
    ("张三", "张*"),
    ("张三丰", "张*"),
    ("欧阳娜娜", "欧*"),
    ("李", "李*"),
    (" 王五 ", "王*"),
    ("阿依古丽·买买提", "阿*"),
    ("", ""),
    (None, None),
]
PHONE_CASES = [
    ("13812345678", "138****5678"),
    ("138 1234 5678", "138****5678"),
    ("+86 138-1234-5678", "138****5678"),
    ("0571-88881234", "057****1234"),
    ("88881234", "888****1234"),
    ("1234567", "*******"),
    ("", ""),
    (None, None),
]


@pytest.mark.parametrize(("raw", "masked"), ID_CASES)
def test_mask_id_number(raw: str | None, masked: str | None) -> None:
    assert mask_id_number(raw) == masked


@pytest.mark.parametrize(("raw", "masked"), NAME_CASES)
def test_mask_name(raw: str | None, masked: str | None) -> None:
    assert mask_name(raw) == masked


@pytest.mark.parametrize(("raw", "masked"), PHONE_CASES)
def test_mask_phone(raw: str | None, masked: str | None) -> None:
    assert mask_phone(raw) == masked


@pytest.mark.parametrize(
    ("fn", "cases"),
    [(mask_id_number, ID_CASES), (mask_name, NAME_CASES), (mask_phone, PHONE_CASES)],
)
def test_vectorised_equals_scalar(fn, cases) -> None:  # type: ignore[no-untyped-def]
    raw = [c[0] for c in cases]
    expected = [c[1] for c in cases]
    assert fn(pa.array(raw, pa.string())).to_pylist() == expected
    chunked = pa.chunked_array([pa.array(raw[:3], pa.string()), pa.array(raw[3:], pa.string())])
    out = fn(chunked)
    assert isinstance(out, pa.ChunkedArray) and out.to_pylist() == expected
    assert fn(pa.array(raw, pa.large_string())).to_pylist() == expected


def test_masked_id_is_never_a_valid_id_number() -> None:
    ids = [f"33010619800101{k:03d}" for k in range(200)]
    full = [i + id_check_char(i) for i in ids]
    assert all(is_valid_id_number(i) for i in full)
    for m in mask_id_number(pa.array(full)).to_pylist():
        assert len(m) == 18 and m[6:14] == "********" and not is_valid_id_number(m)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"bad value {ID} in column gmsfhm",
            f"bad value {ID[:6]}********{ID[-4:]} in column gmsfhm",
        ),
        (f"id={ID};", f"id={ID[:6]}********{ID[-4:]};"),
        (f"{ID_X.lower()}", f"{ID_X[:6]}********{ID_X[-4:].lower()}"),
        ("old 330106800101001 here", "old 330106********1001 here"),
        ("call 13812345678 now", "call 138****5678 now"),
        ("call +8613812345678", "call 138****5678"),
        (
            "port 5432, 16 digits 1234567890123456 stay",
            "port 5432, 16 digits 1234567890123456 stay",
        ),
        ("no personal data", "no personal data"),
    ],
)
def test_mask_text(text: str, expected: str) -> None:
    assert mask_text(text) == expected


def test_mask_text_leaves_no_full_id_or_mobile() -> None:
    text = " ".join([ID, ID_X, "13912345678", f"x{ID}y", f"({ID_X})"])
    masked = mask_text(text)
    assert not re.search(r"[0-9]{17}[0-9Xx]", masked)
    assert not re.search(r"1[3-9][0-9]{9}", masked)
