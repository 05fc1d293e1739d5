"""Working days on the mainland calendar (工作日): problem due dates (docs/problems.md).

A working day is what the State Council's yearly notice makes it: Monday to Friday unless a
holiday, and the 调休 make-up Saturdays and Sundays. The notices come from the maintained
library ``chinesecalendar`` (``chinese_calendar``). A year the library does not cover yet falls
back to weekends plus the holiday list of ``dags/holidays.yaml`` (``config.HolidayFallback``),
and the calendar remembers which years did, so the report can say so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import chinese_calendar

from datacloud.config import HolidayFallback, load_holiday_fallback

LIBRARY = "chinesecalendar"
LIBRARY_VERSION = str(getattr(chinese_calendar, "__version__", ""))


def library_years() -> range:
    """The years the holiday library knows the notice of."""
    known = [d.year for d in (*chinese_calendar.holidays, *chinese_calendar.workdays)]
    return range(min(known), max(known) + 1)


@dataclass
class WorkingCalendar:
    """Working days from the library, a fallback list for the years it does not cover."""

    fallback: HolidayFallback = field(default_factory=HolidayFallback)
    years: range = field(default_factory=library_years)
    fallback_used: set[int] = field(default_factory=set)  # years counted on the fallback

    @classmethod
    def load(cls) -> WorkingCalendar:
        return cls(load_holiday_fallback())

    def covered(self, day: date) -> bool:
        """Whether the holiday library knows ``day``'s year."""
        return day.year in self.years

    def is_workday(self, day: date) -> bool:
        if self.covered(day):
            return bool(chinese_calendar.is_workday(day))
        self.fallback_used.add(day.year)
        if day in self.fallback.workdays:
            return True
        return day.weekday() < 5 and day not in self.fallback.holidays

    def add(self, start: date, n: int) -> date:
        """The ``n``-th working day after ``start`` (``start`` itself not counted): a problem
        first seen on ``start`` with ``n`` working days to fix is due that day."""
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        day, left = start, n
        while left:
            day += timedelta(days=1)
            if self.is_workday(day):
                left -= 1
        return day

    def source(self) -> dict[str, object]:
        """What the due dates were counted on (report.json ``problems.calendar``)."""
        return {
            "library": LIBRARY,
            "library_version": LIBRARY_VERSION,
            "library_years": [self.years.start, self.years.stop - 1],
            "fallback_years": sorted(self.fallback_used),
        }
