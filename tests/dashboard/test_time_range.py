"""Windows on a store's clock: today, this week, the previous period and day buckets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dashboard.model import Trend
from dashboard.time_range import TimeRange, Zones, next_bucket

NOW = datetime(2026, 3, 14, 15, 9, 26, tzinfo=UTC)  # a Saturday; 16:09 in Berlin


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_today_begins_at_the_zones_midnight_and_compares_with_yesterday_so_far() -> None:
    today = TimeRange.since("day", NOW, "Europe/Berlin")
    assert (today.start, today.end) == (utc(2026, 3, 13, 23), utc(2026, 3, 14, 15, 10))
    previous = today.previous()
    assert (previous.start, previous.end) == (utc(2026, 3, 12, 23), utc(2026, 3, 13, 15, 10))
    new_york = TimeRange.since("day", NOW, "America/New_York")  # 11:09 there, EDT since Mar 8
    assert new_york.start == utc(2026, 3, 14, 4)


def test_this_week_begins_on_monday() -> None:
    week = TimeRange.since("week", NOW, "Europe/Berlin")
    assert week.start == utc(2026, 3, 8, 23)  # Monday 9 March, 00:00 in Berlin
    assert week.previous().start == utc(2026, 3, 1, 23)


def test_a_day_bucket_follows_the_zone_across_a_clock_change() -> None:
    """Berlin moves its clocks forward on 29 March 2026: that day has 23 hours."""
    window = TimeRange.between(utc(2026, 3, 25, 12), utc(2026, 4, 4, 12), "Europe/Berlin")
    assert window.grain == "day"
    buckets = window.buckets()
    assert buckets[0] == utc(2026, 3, 24, 23)  # the day holding the start, from its midnight
    assert utc(2026, 3, 28, 23) in buckets and utc(2026, 3, 29, 22) in buckets
    assert next_bucket(utc(2026, 3, 28, 23), "day", "Europe/Berlin") == utc(2026, 3, 29, 22)
    in_utc = TimeRange.between(utc(2026, 3, 25, 12), utc(2026, 4, 4, 12))
    assert in_utc.buckets()[0] == utc(2026, 3, 25)


def test_an_order_at_2330_utc_is_on_the_next_day_in_berlin() -> None:
    window = TimeRange.between(utc(2026, 1, 1), utc(2026, 1, 15), "Europe/Berlin")
    body = {
        "metric": "orders",
        "points": [{"bucket": "2026-01-10T23:00:00+00:00", "value": 1}],  # Berlin's Jan 11
    }
    trend = Trend.from_json(body, window)
    assert trend.zone == "Europe/Berlin"
    filled = {p.bucket: p.value for p in trend.points}
    assert filled[utc(2026, 1, 10, 23)] == 1 and filled[utc(2026, 1, 9, 23)] == 0
    assert all(b.hour == 23 for b in filled)  # every bucket is a Berlin midnight
    assert trend.is_open(utc(2026, 1, 14, 23), utc(2026, 1, 15, 12))
    assert not trend.is_open(utc(2026, 1, 13, 23), utc(2026, 1, 15, 12))


def test_zones_from_the_service() -> None:
    zones = Zones.from_json(
        {"display_timezone": "Europe/Berlin", "sources": {"a": "Asia/Tokyo", "b": "Nowhere/X"}}
    )
    assert zones.of(None) == "Europe/Berlin" and zones.of("a") == "Asia/Tokyo"
    assert zones.of("b") == "UTC"  # a name this machine's zone database does not know
    assert zones.of("unlisted") == "Europe/Berlin"
    assert TimeRange.last(timedelta(hours=1), NOW, "Asia/Tokyo").previous().zone == "Asia/Tokyo"
