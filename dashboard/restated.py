"""The "Restated" panel's values: each of the last days as first reported and as it is now.

Pure data, no I/O: `dashboard.data` fills these from `GET /api/v1/metrics/restatements`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from dashboard.model import decimal_or_none
from dashboard.time_range import TimeRange

#: Closed days the panel shows.
DAYS = 7
#: A day whose figure moved by more than this share of its first reported value is marked.
THRESHOLD = Decimal("0.01")

#: How each cause reads on the page.
CAUSE_LABELS = {
    "late_delivery": "late delivery",
    "cancellation": "cancellation or deletion",
    "refund": "refund",
    "order_edit": "order edit",
    "abandonment": "abandonment",
    "abandonment_reversed": "abandonment reversed",
    "reconciliation_fill": "reconciliation fill",
    "replay": "replay from quarantine",
}


def closed_days(now: datetime, zone: str = "UTC", days: int = DAYS) -> TimeRange:
    """The last `days` whole days of `zone` before today."""
    local = now.astimezone(ZoneInfo(zone)).date()
    start, end = (
        datetime.combine(local - timedelta(days=n), datetime.min.time(), ZoneInfo(zone))
        for n in (days, 0)
    )
    return TimeRange(start.astimezone(UTC), end.astimezone(UTC), zone)


@dataclass(frozen=True)
class RestatedDay:
    """One closed day of one currency: first reported, now, and the difference by cause."""

    day: datetime
    currency: str | None
    first_reported: Decimal | None  # None: the day closed before the service kept history
    now: Decimal
    difference: Decimal | None
    causes: tuple[tuple[str, Decimal], ...]

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> RestatedDay:
        return cls(
            day=datetime.fromisoformat(str(item["bucket"])).astimezone(UTC),
            currency=item["currency"],
            first_reported=decimal_or_none(item["first_reported"]),
            now=Decimal(str(item["now"])),
            difference=decimal_or_none(item["difference"]),
            causes=tuple((str(c), Decimal(str(v))) for c, v in item["causes"].items()),
        )

    def moved(self, threshold: Decimal = THRESHOLD) -> bool:
        """Whether the figure moved by more than `threshold` of what was first reported (any
        move at all from a first report of zero)."""
        if self.difference is None or self.first_reported is None or not self.difference:
            return False
        if not self.first_reported:
            return True
        return abs(self.difference) > threshold * abs(self.first_reported)
