"""The windows the dashboard shows: ranges, their previous period and their buckets, in a zone.

A window is a half-open `[start, end)` of UTC instants aligned to the minute, like the service's
aggregates. Its `zone` (IANA) is the clock its hour and day buckets, "today" and weeks follow: a
source's own time zone, or the display zone for all sources. Pure values, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from metrics.definitions import Grain

#: How a range steps back to its previous period: by its own length, or by a calendar day or week
#: on the zone's clock (today so far against yesterday up to the same time).
Calendar = Literal["span", "day", "week"]

RANGES: dict[str, timedelta] = {
    "Last 15 minutes": timedelta(minutes=15),
    "Last hour": timedelta(hours=1),
    "Last 24 hours": timedelta(hours=24),
    "Last 7 days": timedelta(days=7),
}
#: Ranges that begin at the zone's midnight (today) or Monday midnight (this week).
CALENDAR_RANGES: dict[str, Calendar] = {"Today": "day", "This week": "week"}
CUSTOM_RANGE = "Custom"

_MINUTE = timedelta(minutes=1)
_CALENDAR_STEP = {"day": timedelta(days=1), "week": timedelta(weeks=1)}


def floor_minute(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def grain_for(span: timedelta) -> Grain:
    """Minute buckets up to three hours, hour buckets up to eight days, then days."""
    if span <= timedelta(hours=3):
        return "minute"
    if span <= timedelta(days=8):
        return "hour"
    return "day"


def _local_start(moment: datetime, grain: Grain, zone: ZoneInfo) -> datetime:
    """The start of the bucket holding `moment`, on the zone's clock (an aware local time)."""
    local = floor_minute(moment).astimezone(zone)
    if grain == "hour":
        local = local.replace(minute=0)
    elif grain == "day":
        local = local.replace(hour=0, minute=0)
    # a wall-clock time rebuilt after a clock change: resolve it to a real instant again
    return local.astimezone(UTC).astimezone(zone)


def next_bucket(bucket: datetime, grain: Grain, zone: str) -> datetime:
    """Where the bucket that starts at `bucket` ends: a minute or an hour later, or the zone's
    next midnight (23 or 25 hours later on the days its clocks change)."""
    if grain != "day":
        return bucket + (_MINUTE if grain == "minute" else timedelta(hours=1))
    local = bucket.astimezone(ZoneInfo(zone))
    following = datetime.combine(local.date() + timedelta(days=1), local.time(), local.tzinfo)
    return following.astimezone(UTC)


@dataclass(frozen=True)
class TimeRange:
    """A half-open window [start, end) of UTC instants, minute-aligned, read on `zone`'s clock."""

    start: datetime
    end: datetime
    zone: str = "UTC"
    calendar: Calendar = "span"

    @classmethod
    def last(cls, span: timedelta, now: datetime, zone: str = "UTC") -> TimeRange:
        """The `span` that ends with the current minute (included)."""
        end = floor_minute(now) + _MINUTE
        return cls(end - span, end, zone)

    @classmethod
    def since(cls, calendar: Calendar, now: datetime, zone: str = "UTC") -> TimeRange:
        """Today or this week so far, from the zone's midnight (Monday's for a week) up to the
        current minute (included)."""
        local = now.astimezone(ZoneInfo(zone))
        day = local.date() - timedelta(days=local.weekday() if calendar == "week" else 0)
        start = datetime.combine(day, datetime.min.time(), ZoneInfo(zone)).astimezone(UTC)
        return cls(start, floor_minute(now) + _MINUTE, zone, calendar)

    @classmethod
    def between(cls, start: datetime, end: datetime, zone: str = "UTC") -> TimeRange:
        start, end = floor_minute(start), floor_minute(end)
        if start >= end:
            raise ValueError("the start must be before the end")
        return cls(start, end, zone)

    @property
    def span(self) -> timedelta:
        return self.end - self.start

    @property
    def grain(self) -> Grain:
        return grain_for(self.span)

    def previous(self) -> TimeRange:
        """The period to compare with: of equal length just before this one; for today (this
        week) so far, yesterday (last week) from its start up to the same time of day."""
        if self.calendar == "span":
            return TimeRange(self.start - self.span, self.start, self.zone)
        zone = ZoneInfo(self.zone)
        step = _CALENDAR_STEP[self.calendar]
        start = (self.start.astimezone(zone) - step).astimezone(UTC)
        end = (self.end.astimezone(zone) - step).astimezone(UTC)
        return TimeRange(start, end, self.zone)

    def buckets(self) -> list[datetime]:
        """The start of every bucket of the window's grain, on the zone's clock, as UTC."""
        moment = _local_start(self.start, self.grain, ZoneInfo(self.zone)).astimezone(UTC)
        out = []
        while moment < self.end:
            out.append(moment)
            moment = next_bucket(moment, self.grain, self.zone)
        return out


@dataclass(frozen=True)
class Zones:
    """The zone of each source's days, and the display zone of the all-sources view."""

    display: str = "UTC"
    sources: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Zones:
        """A `GET /api/v1/metrics/timezones` answer; names the zone database does not know
        (an older or newer database than the service's) read as UTC."""
        sources = body.get("sources") or {}
        return cls(
            _known(str(body.get("display_timezone") or "UTC")),
            {str(k): _known(str(v)) for k, v in sources.items()},
        )

    def of(self, source: str | None) -> str:
        return self.sources.get(source, self.display) if source else self.display


def _known(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return "UTC"
    return name
