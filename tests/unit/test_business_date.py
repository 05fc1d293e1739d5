"""The business date of a run: the Shanghai day before the run's data-interval end."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pendulum
import pytest

from datacloud.business_day import business_date
from datacloud.demo import logical_date_for


@pytest.mark.parametrize(
    ("end", "expected"),
    [
        (
            pendulum.datetime(2026, 11, 20, 18, 0, tz="UTC"),
            date(2026, 11, 20),
        ),  # 02:00 Shanghai, 21 Nov
        (datetime(2026, 11, 20, 18, 0, tzinfo=UTC), date(2026, 11, 20)),
        (
            pendulum.datetime(2026, 11, 20, 15, 59, tz="UTC"),
            date(2026, 11, 19),
        ),  # 23:59 Shanghai, 20 Nov
        (pendulum.datetime(2026, 11, 21, 2, 0, tz="Asia/Shanghai"), date(2026, 11, 20)),
    ],
)
def test_business_date(end: datetime, expected: date) -> None:
    assert business_date(end) == expected


def test_run_conf_overrides_and_demo_logical_date_round_trips() -> None:
    assert business_date(pendulum.now("UTC"), {"business_date": "2026-01-05"}) == date(2026, 1, 5)
    ds = date(2026, 11, 20)
    assert business_date(logical_date_for(ds)) == ds


def test_the_zone_and_the_calendar_live_in_one_module() -> None:
    """A zone is built in datacloud/business_day.py only (dags, cli, demo and the reports each
    had their own ``ZoneInfo("Asia/Shanghai")``)."""
    import re
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    found = [
        f"{path.relative_to(repo)}"
        for folder in ("datacloud", "dags")
        for path in sorted((repo / folder).rglob("*.py"))
        if re.search(r"\bZoneInfo\(", path.read_text(encoding="utf-8"))
    ]
    assert found == ["datacloud/business_day.py"]


def test_an_asset_triggered_curation_covers_the_date_its_staged_events_carry() -> None:
    from datacloud.business_day import of_staged_events

    extras = [{"business_date": "2026-11-19"}, {"business_date": "2026-11-20"}, {}, None]
    assert of_staged_events(extras) == date(2026, 11, 20)
    assert of_staged_events([{}, None]) is None  # an older deployment's events: the day before
