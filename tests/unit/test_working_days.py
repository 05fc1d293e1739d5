"""Due dates in working days on the mainland calendar (chinesecalendar: the State Council's
notices with their 调休 make-up working days), and the fallback for a year it does not cover."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from datacloud.config import ConfigError, HolidayFallback, load_holiday_fallback
from datacloud.paths import DAGS_DIR
from datacloud.working_days import WorkingCalendar, library_years


def test_national_day_2025_and_its_make_up_days() -> None:
    """2025: 1-8 October off; Sunday 28 September and Saturday 11 October worked (调休)."""
    cal = WorkingCalendar()
    assert cal.is_workday(date(2025, 9, 28))  # a Sunday, worked
    assert cal.is_workday(date(2025, 10, 11))  # a Saturday, worked
    assert not any(cal.is_workday(date(2025, 10, d)) for d in range(1, 9))
    assert not cal.is_workday(date(2025, 10, 12))  # an ordinary Sunday
    # seen on Friday 26 September: Sun 28, Mon 29, Tue 30, (1-8 off), Thu 9, Fri 10
    assert cal.add(date(2025, 9, 26), 5) == date(2025, 10, 10)
    # seen on Tuesday 30 September: Thu 9, Fri 10, Sat 11 (worked), Mon 13, Tue 14
    assert cal.add(date(2025, 9, 30), 5) == date(2025, 10, 14)
    assert cal.add(date(2025, 10, 9), 2) == date(2025, 10, 11)  # the make-up Saturday counts
    assert cal.source()["fallback_years"] == []


def test_national_day_2026_and_its_make_up_days() -> None:
    """2026: 1-7 October off; Sunday 20 September and Saturday 10 October worked."""
    cal = WorkingCalendar()
    assert cal.is_workday(date(2026, 9, 20)) and cal.is_workday(date(2026, 10, 10))
    assert not any(cal.is_workday(date(2026, 10, d)) for d in range(1, 8))
    assert cal.add(date(2026, 9, 18), 5) == date(2026, 9, 24)  # Sun 20 counts
    # seen on Wednesday 30 September: Thu 8, Fri 9, Sat 10 (worked), Mon 12, Tue 13
    assert cal.add(date(2026, 9, 30), 5) == date(2026, 10, 13)
    # without the make-up Saturday it would be Wednesday 14
    assert cal.add(date(2026, 9, 29), 5) == date(2026, 10, 12)


def test_a_year_the_library_does_not_cover_falls_back_and_says_so() -> None:
    assert 2026 in library_years()
    cal = WorkingCalendar(HolidayFallback(holidays=[date(2027, 1, 1)]))
    # Thu 31 Dec; Fri 1 Jan off (the list); weekend; Mon 4, Tue 5
    assert cal.add(date(2026, 12, 30), 3) == date(2027, 1, 5)
    assert cal.source()["fallback_years"] == [2027]
    made_up = WorkingCalendar(
        HolidayFallback(holidays=[date(2027, 1, 1)], workdays=[date(2027, 1, 2)])
    )
    assert made_up.add(date(2026, 12, 30), 3) == date(2027, 1, 4)  # Saturday 2 worked
    weekends_only = WorkingCalendar()
    if 2027 not in library_years():
        assert weekends_only.add(date(2026, 12, 30), 3) == date(2027, 1, 4)
    with pytest.raises(ValueError):
        cal.add(date(2026, 12, 30), 0)


def test_the_shipped_holiday_list_and_a_bad_one(tmp_path: Path) -> None:
    shipped = load_holiday_fallback(DAGS_DIR / "holidays.yaml")
    assert date(2027, 1, 1) in shipped.holidays and date(2027, 10, 1) in shipped.holidays
    assert load_holiday_fallback(tmp_path / "missing.yaml") == HolidayFallback()
    bad = tmp_path / "holidays.yaml"
    bad.write_text("holidays: [2027-01-01]\nworkdays: [2027-01-01]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="both as holiday and as working day"):
        load_holiday_fallback(bad)
    bad.write_text("holidays: [not-a-date]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="holidays"):
        load_holiday_fallback(bad)
