"""The business-date calendar: the Asia/Shanghai zone and the night that loads a business day.

One business date is one Shanghai calendar day. A department's night runs after midnight
(02:00 by default) and loads the day before; curation and the reports speak of the same date.
Pure standard library, so DAG files may import it at parse time.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

ZONE = "Asia/Shanghai"
SHANGHAI = ZoneInfo(ZONE)
NIGHT_STARTS = time(2, 0)  # the default schedule of a department night (Shanghai wall time)


def business_date(data_interval_end: datetime, conf: dict[str, Any] | None = None) -> date:
    """The business date a run covers: the Shanghai day before the run's interval end.

    A run scheduled at 02:00 on 21 November loads 20 November. ``business_date`` in the run
    conf overrides it (backfills of a single day).
    """
    if conf and conf.get("business_date"):
        return date.fromisoformat(str(conf["business_date"]))
    # through the POSIX timestamp: pendulum's astimezone() with a ZoneInfo gives the wrong day
    local = datetime.fromtimestamp(data_interval_end.timestamp(), tz=SHANGHAI)
    return (local - timedelta(days=1)).date()


def of_staged_events(extras: list[dict[str, Any] | None]) -> date | None:
    """The business date an asset-triggered curation run covers, from its staged events.

    Each department night's stage task stamps its staged Asset event with the business date it
    loaded (``{"business_date": "YYYY-MM-DD"}``); the run covers the latest of them. None when
    no event carries one (events of an older deployment): then the day before the run.
    """
    dates = [str(e["business_date"]) for e in extras if e and e.get("business_date")]
    return date.fromisoformat(max(dates)) if dates else None


def night_of(ds: date) -> datetime:
    """The scheduled run that loads business date ``ds``: 02:00 Shanghai the next day."""
    return datetime.combine(ds + timedelta(days=1), NIGHT_STARTS, tzinfo=SHANGHAI)


def today() -> date:
    """Today's date in Shanghai."""
    return datetime.now(SHANGHAI).date()


def now_wall() -> datetime:
    """Shanghai wall time, naive (the lineage column ``_loaded_at``)."""
    return datetime.now(tz=SHANGHAI).replace(tzinfo=None)


def from_millis(ms: int) -> datetime:
    """A Delta commit timestamp (epoch milliseconds) in Shanghai time."""
    return datetime.fromtimestamp(ms / 1000, tz=SHANGHAI)
