"""mask_text on ID and mobile numbers typed the way people type them into free text (a lookup's
``purpose``, a driver's error text): full-width digits, spaces or hyphens between groups,
zero-width characters between the digits. Nothing is mocked."""

from __future__ import annotations

import unicodedata
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datacloud.masking import mask_text
from transforms.id_number import id_check_char

# area codes whose digits cannot, next to any last 4, spell a birth date (no "19"/"20" in the
# first 4): the shown 6 + 4 digits then never contain the hidden 8 by coincidence
AREAS = ["110101", "330106", "440305", "510104", "650102", "210102"]
SEPARATORS = [" ", "  ", "-", "\u3000", "\u00a0", "\uff0d", "\u2010", "\u2013", "\t"]
INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad"]
FULL_WIDTH = str.maketrans("0123456789Xx", "０１２３４５６７８９Ｘｘ")


def _id(area: str, born: date, seq: int) -> str:
    first17 = f"{area}{born:%Y%m%d}{seq:03d}"
    return first17 + id_check_char(first17)


def _digits(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKC", text) if c in "0123456789")


ID = _id("330106", date(1990, 3, 7), 77)


@pytest.mark.parametrize(
    "typed",
    [
        f"{ID[:6]} {ID[6:14]} {ID[14:]}",  # spaces between groups
        f"{ID[:6]}-{ID[6:10]}-{ID[10:14]}-{ID[14:]}",  # hyphens
        ID.translate(FULL_WIDTH),  # full-width digits
        "\u200b".join(ID),  # a zero-width space between every digit
        f"{ID[:3]}\u200d{ID[3:9]}\ufeff{ID[9:12]}\u2060{ID[12:]}",
        " ".join(ID[i : i + 4] for i in range(0, 18, 4)),  # groups of four, as on a bank card
        f"{ID[:6]}\u3000{ID[6:]}".translate(FULL_WIDTH),  # ideographic space, full width
    ],
)
def test_an_id_number_typed_with_separators_or_invisible_characters_is_masked(typed: str) -> None:
    masked = mask_text(f"核查{typed}的房产")
    assert masked == f"核查{ID[:6]}********{ID[-4:]}的房产"


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("138 1234 5678", "138****5678"),
        ("138-1234-5678", "138****5678"),
        ("+86 138 1234 5678", "138****5678"),
        ("１３８１２３４５６７８", "138****5678"),
        ("138\u200b1234\u200b5678", "138****5678"),
    ],
)
def test_a_mobile_number_typed_in_groups_is_masked(typed: str, expected: str) -> None:
    assert mask_text(f"联系 {typed} 回访") == f"联系 {expected} 回访"


def test_text_without_numbers_stays_character_for_character() -> None:
    for text in (
        "公积金提取审核（复核）",
        "port 5432, 2026-11-20 10:00:00",
        "a\u200bb　c",
        "ｘ＝１",
    ):
        assert mask_text(text) == text


def test_a_number_next_to_an_id_number_does_not_hide_it() -> None:
    """Reading groups together must not make an ID number part of a run too long to match."""
    assert mask_text(f"编号 12 {ID} 号") == f"编号 12 {ID[:6]}********{ID[-4:]} 号"
    glued = f"99{ID[:6]} {ID[6:10]} {ID[10:14]} {ID[14:]}"  # no whole-group ID number
    assert ID[6:14] not in _digits(mask_text(glued))


_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Nd", "Nl", "No", "Cs")), max_size=12
).filter(lambda t: not _digits(t))


@st.composite
def _typed_id(draw: st.DrawFn) -> tuple[str, str]:
    """(the text with an ID number typed into it, the 8 birth-date digits)."""
    born = draw(st.dates(date(1930, 1, 1), date(2025, 12, 31)))
    number = _id(draw(st.sampled_from(AREAS)), born, draw(st.integers(0, 999)))
    if number.endswith("X") and draw(st.booleans()):
        number = number[:-1] + "x"
    chars = [
        c.translate(FULL_WIDTH) if draw(st.booleans()) else c for c in number
    ]  # some digits full-width
    inserts = draw(
        st.lists(
            st.tuples(
                st.integers(1, len(chars) - 1),
                st.lists(st.sampled_from(SEPARATORS + INVISIBLE), min_size=1, max_size=3),
            ),
            max_size=12,
        )
    )
    for at, seps in sorted(inserts, reverse=True):
        chars.insert(at, "".join(seps))
    text = draw(_TEXT) + "".join(chars) + draw(_TEXT)
    return text, f"{born:%Y%m%d}"


@settings(max_examples=400, deadline=None, database=None)
@given(_typed_id())
def test_property_no_birth_date_survives_separators_or_invisible_characters(
    case: tuple[str, str],
) -> None:
    text, birth = case
    assert birth in _digits(text)  # the premise: it was there
    masked = mask_text(text)
    assert birth not in _digits(masked), (text, masked)
    assert "********" in masked


@settings(max_examples=200, deadline=None, database=None)
@given(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40),
    st.integers(0, 999),
    st.dates(date(1930, 1, 1), date(2025, 12, 31)),
)
def test_property_masking_is_local(around: str, seq: int, born: date) -> None:
    """Whatever text (digits, invisible characters, anything) comes before a full-width colon,
    the ID number after it is masked and the text before it is masked as if alone."""
    number = _id("440305", born, seq)
    masked = mask_text(f"{around}：{number}")
    assert masked == mask_text(f"{around}：") + f"{number[:6]}********{number[-4:]}"


def test_many_numbers_in_one_long_text() -> None:
    """A long driver error text with thousands of ID numbers: every one masked."""
    start = date(1980, 1, 1)
    numbers = [_id("510104", start + timedelta(days=k), k % 1000) for k in range(2000)]
    text = "; ".join(f"row {k}: {n}" for k, n in enumerate(numbers))
    masked = mask_text(text)
    assert not any(n in masked for n in numbers)
    assert masked.count("********") == len(numbers)
