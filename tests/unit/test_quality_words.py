"""Quality-gate results in plain Chinese for the department's report."""

from __future__ import annotations

from datacloud.quality_words import check_zh, in_chinese, in_english, observation


def test_check_names_read_as_chinese() -> None:
    assert check_zh("id_number.valid") == "身份证号码 合规率"
    assert check_zh("owner_id_number.resolves") == "权利人身份证号码 能否关联到登记"
    assert check_zh("key.unique") == "主键 不重复"
    assert check_zh("volume") == "数据量（与近几晚相比）"
    assert check_zh("zzz.new_kind") == "zzz new_kind"  # unknown parts shown as they are


def test_observed_values_in_chinese_words_and_counts() -> None:
    in_set = observation(
        "expect_column_values_to_be_in_set",
        {"mostly": 0.995},
        {"element_count": 20213, "unexpected_count": 172, "unexpected_percent_nonmissing": 0.851},
    )
    assert in_chinese(in_set) == "不合规 0.85%（20,213 个值中 172 个），最多允许 0.50%"
    assert in_english(in_set) == "0.85% invalid (172 of 20,213 values); at most 0.50% allowed"
    volume = observation(
        "expect_table_row_count_to_be_between",
        {"min_value": 9000, "max_value": 54000},
        {"observed_value": 1800},
    )
    assert in_chinese(volume) == "本晚 1,800 行，应在 9,000–54,000 行之间"
    assert in_english(volume) == "1800 rows; expected 9000..54000"
    empty = observation(
        "expect_column_values_to_not_be_null",
        {"mostly": 0.9},
        {"element_count": 100, "unexpected_count": 30, "unexpected_percent": 30.0},
    )
    assert in_chinese(empty) == "为空 30.00%（100 行中 30 行），最多允许 10.00%"
    assert in_english(empty) == "30.00% empty (30 of 100 rows); at most 10.00% allowed"
