"""The dashboard's values: windows, figures, KPIs, trends and ingestion health.

Pure data and arithmetic, no I/O: `dashboard.data` fills these from the service's read API.
Money stays an exact `Decimal` with its currency.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from dashboard.time_range import TimeRange, next_bucket
from metrics.definitions import FUNNEL_COUNTS, METRICS, Grain
from metrics.responses import CurrencyFigures as SentCurrency
from metrics.responses import WindowFigures

UNKNOWN_SOURCE = "_unknown"
OUTCOMES = ("accepted", "duplicate", "quarantined", "rejected")

KpiKind = Literal["count", "money", "rate"]
PipelineState = Literal["caught_up", "busy", "lagging", "unknown"]

#: Age of the newest counted event beyond which events still waiting to be counted are a lag.
LAG_WARNING_SECONDS = 10.0

# ----------------------------------------------------------------------------- values


def decimal_or_none(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _time(value: Any) -> datetime | None:
    return None if value is None else _moment(str(value))


@dataclass(frozen=True)
class CurrencyFigures:
    """The money figures of one currency, as exact Decimals."""

    currency: str | None
    orders: int
    gross_sales: Decimal | None
    discounts: Decimal | None
    returns: Decimal | None
    net_sales: Decimal | None
    aov: Decimal | None

    @classmethod
    def from_wire(cls, sent: SentCurrency) -> CurrencyFigures:
        return cls(
            currency=sent.currency,
            orders=sent.orders,
            **{name: decimal_or_none(getattr(sent, name)) for name in MONEY_FIELDS},
        )


#: The money fields of each currency's figures, sent as decimal strings.
MONEY_FIELDS = ("gross_sales", "discounts", "returns", "net_sales", "aov")
#: The rates, as `GET /api/v1/metrics` names them.
RATES = tuple(m.name for m in METRICS.values() if m.kind == "rate")
# How the dashboard reads each field of `metrics.responses.WindowFigures`, the API's answer:
#: as sent (same name and type);
AS_SENT = (
    "source",
    "orders",
    "orders_without_amounts",
    *FUNNEL_COUNTS,
    *RATES,
    "provisional",
    "freshness_seconds",
    "events_folded_through",
    "cart_abandon_after_seconds",
    "checkout_abandon_after_seconds",
)
#: converted: the window's ends and moments to datetimes, the money to Decimals (field: ours);
CONVERTED = {
    "from_": "start",
    "to": "end",
    "as_of": "as_of",
    "watermark": "watermark",
    "by_currency": "by_currency",
}
#: not read: the one-currency shortcut (the dashboard reads `by_currency`) and the versions.
NOT_READ = ("currency", *MONEY_FIELDS, "definition_versions")


@dataclass(frozen=True)
class Figures:
    """Every metric of one window, as `GET /api/v1/metrics` returns it (validated against the
    API's own model, `metrics.responses.WindowFigures`; see AS_SENT and CONVERTED)."""

    source: str | None
    start: datetime
    end: datetime
    orders: int
    by_currency: tuple[CurrencyFigures, ...]
    orders_without_amounts: int
    carts_created: int
    carts_converted: int
    carts_abandoned: int
    carts_open: int
    checkouts_started: int
    checkouts_completed: int
    checkouts_abandoned: int
    checkouts_open: int
    cart_conversion_rate: float | None
    cart_abandonment_rate: float | None
    checkout_conversion_rate: float | None
    checkout_abandonment_rate: float | None
    provisional: bool
    as_of: datetime | None
    watermark: datetime | None
    freshness_seconds: float | None
    #: The last event the figures include.
    events_folded_through: int
    #: Inactivity after which an open cart / checkout counts as abandoned.
    cart_abandon_after_seconds: float
    checkout_abandon_after_seconds: float

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Figures:
        """Raises pydantic.ValidationError when `body` is not what the API answers."""
        sent = WindowFigures.model_validate(body)
        return cls(
            start=_moment(sent.from_),
            end=_moment(sent.to),
            by_currency=tuple(CurrencyFigures.from_wire(c) for c in sent.by_currency),
            as_of=_time(sent.as_of),
            watermark=_time(sent.watermark),
            **{name: getattr(sent, name) for name in AS_SENT},
        )

    def money(self, currency: str | None) -> CurrencyFigures | None:
        """The money figures of `currency` (None when the window has none in it)."""
        for figures in self.by_currency:
            if figures.currency == currency and currency is not None:
                return figures
        return None

    @property
    def currencies(self) -> list[str]:
        """Currencies with figures, the one with most orders first."""
        ranked = sorted(
            (c for c in self.by_currency if c.currency is not None),
            key=lambda c: (-c.orders, c.currency or ""),
        )
        return [c.currency for c in ranked if c.currency is not None]


@dataclass(frozen=True)
class Kpi:
    """One tile: the window's value and the previous period's, in one currency for money."""

    name: str
    label: str
    kind: KpiKind
    value: int | Decimal | float | None
    previous: int | Decimal | float | None
    currency: str | None = None
    provisional: bool = False
    higher_is_better: bool = True
    #: A rate whose cohorts (this period's or the previous one's) still hold open carts or
    #: checkouts: the two are not alike yet, so no change is shown (the open ones of the current
    #: period have had no time to be abandoned).
    unsettled: bool = False

    @property
    def delta(self) -> int | Decimal | float | None:
        if self.unsettled:
            return None
        value, previous = self.value, self.previous
        if isinstance(value, Decimal) and isinstance(previous, Decimal):
            return value - previous
        if isinstance(value, (int, float)) and isinstance(previous, (int, float)):
            return value - previous
        return None


#: Tile labels; the metric definitions' otherwise.
_LABELS = {"aov": "AOV"}


def _label(name: str) -> str:
    return _LABELS.get(name, METRICS[name].label)


def _money_kpi(
    name: str, current: Figures, previous: Figures, currency: str | None, zero_when_empty: bool
) -> Kpi:
    def value(figures: Figures) -> Decimal | None:
        money = figures.money(currency)
        if money is not None:
            result: Decimal | None = getattr(money, name)
            return result
        return Decimal(0) if zero_when_empty and currency is not None else None

    return Kpi(name, _label(name), "money", value(current), value(previous), currency)


def _rate_kpi(name: str, current: Figures, previous: Figures, open_count: str) -> Kpi:
    """A cohort rate; `open_count` names the figure of its cohort's open carts or checkouts."""
    provisional = getattr(current, open_count) > 0
    return Kpi(
        name,
        _label(name),
        "rate",
        getattr(current, name),
        getattr(previous, name),
        provisional=provisional,
        higher_is_better="abandonment" not in name,
        unsettled=provisional or getattr(previous, open_count) > 0,
    )


def build_kpis(current: Figures, previous: Figures) -> tuple[Kpi, ...]:
    """Orders, net sales, AOV, cart conversion, cart abandonment and checkout abandonment.

    Counts and money compare with the previous period as they are. A rate compares only once both
    periods' cohorts have settled: a cohort that still holds open carts has had no time to
    abandon them (a cart counts as abandoned only after `cart_abandon_after` without activity),
    so its rate set against a settled period's would show a change that is not there.
    """
    currencies = current.currencies or previous.currencies
    currency = currencies[0] if currencies else None
    return (
        Kpi("orders", _label("orders"), "count", current.orders, previous.orders),
        _money_kpi("net_sales", current, previous, currency, zero_when_empty=True),
        _money_kpi("aov", current, previous, currency, zero_when_empty=False),
        _rate_kpi("cart_conversion_rate", current, previous, "carts_open"),
        _rate_kpi("cart_abandonment_rate", current, previous, "carts_open"),
        _rate_kpi("checkout_abandonment_rate", current, previous, "checkouts_open"),
    )


@dataclass(frozen=True)
class Point:
    bucket: datetime
    value: int | Decimal | float | None
    currency: str | None = None


@dataclass(frozen=True)
class Trend:
    """One metric per bucket over the whole window; empty buckets of counts and money are 0."""

    metric: str
    grain: Grain
    points: tuple[Point, ...]

    zone: str = "UTC"

    def is_open(self, bucket: datetime, now: datetime) -> bool:
        """Whether `bucket` has not ended at `now`: its figure is only what came so far."""
        return next_bucket(bucket, self.grain, self.zone) > now

    @classmethod
    def from_json(cls, body: Mapping[str, Any], window: TimeRange) -> Trend:
        """A `GET /api/v1/metrics/timeseries` answer, with the buckets it left out filled in."""
        metric = str(body["metric"])
        kind = METRICS[metric].kind
        points = [
            Point(
                bucket=datetime.fromisoformat(p["bucket"]).astimezone(UTC),
                value=decimal_or_none(p["value"]) if kind in ("money", "average") else p["value"],
                currency=p.get("currency"),
            )
            for p in body["points"]
        ]
        if kind in ("count", "money"):
            zero: int | Decimal = Decimal(0) if kind == "money" else 0
            points = fill_buckets(points, window.buckets(), zero)
        return cls(metric, window.grain, tuple(points), window.zone)


@dataclass(frozen=True)
class SourceRow:
    source: str
    figures: Figures
    accepted: int
    duplicate: int
    quarantined: int
    rejected: int


@dataclass(frozen=True)
class LogLag:
    """How far a scaled-out store is behind the log it consumes."""

    behind: int  #: messages not yet committed
    oldest_age_seconds: float  #: age of the oldest of them
    reachable: bool

    @classmethod
    def from_stats(cls, stats: Mapping[str, Any]) -> LogLag | None:
        log = stats.get("log")
        if not isinstance(log, Mapping) or log.get("role") != "store":
            return None
        return cls(
            behind=int(log.get("behind") or 0),
            oldest_age_seconds=float(log.get("oldest_unacked_age_seconds", 0.0)),
            reachable=bool(log.get("reachable", True)),
        )


@dataclass(frozen=True)
class Health:
    """Ingestion health, for all sources or the one filtered on."""

    accepted: int
    duplicate: int
    quarantined: int
    rejected: int
    rejected_by_reason: tuple[tuple[str, int], ...]
    last_delivery_at: datetime | None
    deliveries_per_second: float | None
    queue_depth: int
    writer_healthy: bool
    freshness_seconds: float | None
    watermark: datetime | None
    as_of: datetime | None
    #: Stored events the figures do not include yet (None: the service does not say).
    events_waiting: int | None = None
    #: Scaled out (docs/scale-out.md): how far the store is behind the log; None when embedded.
    log_lag: LogLag | None = None
    #: Stored orders left out of every figure, and how many are test, cancelled or deleted
    #: (an order can be several; reasons with none are left out).
    not_counted: int = 0
    not_counted_reasons: tuple[tuple[str, int], ...] = ()

    @property
    def pipeline(self) -> PipelineState:
        """`caught_up`: every stored event is counted and nothing queues, however old the newest
        is (a quiet store); `lagging`: events wait and the newest counted one is older than
        `LAG_WARNING_SECONDS`; `busy`: events wait but the figures are fresh; `unknown`: the
        service does not say how many wait."""
        if self.events_waiting is None:
            return "unknown"
        if self.events_waiting == 0 and self.queue_depth == 0:
            return "caught_up"
        if (self.freshness_seconds or 0.0) > LAG_WARNING_SECONDS:
            return "lagging"
        return "busy"


@dataclass(frozen=True)
class QuarantinedDelivery:
    source: str
    delivery_id: str
    topic: str
    received_at: datetime
    reason: str
    next_step: str = ""

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> QuarantinedDelivery:
        return cls(
            source=str(item["source"]),
            delivery_id=str(item["delivery_id"]),
            topic=str(item["topic"]),
            received_at=datetime.fromisoformat(item["received_at"]).astimezone(UTC),
            reason=str(item["reason"] or ""),
            next_step=str(item.get("next") or ""),
        )


@dataclass(frozen=True)
class Snapshot:
    """Everything the live part of the page shows, read at one moment."""

    window: TimeRange
    source: str | None
    current: Figures
    previous: Figures
    kpis: tuple[Kpi, ...]
    orders_trend: Trend
    sales_trend: Trend
    sources: tuple[SourceRow, ...]
    health: Health
    read_at: datetime


class RateMeter:
    """Deliveries per second from successive cumulative counts (bounded memory)."""

    def __init__(self, window_seconds: float = 10.0, max_samples: int = 16) -> None:
        self.window_seconds = window_seconds
        self._samples: deque[tuple[float, int]] = deque(maxlen=max_samples)

    def add(self, at: float, total: int) -> float | None:
        """Record the total seen at monotonic time `at`; the rate over the recent window."""
        if self._samples and total < self._samples[-1][1]:
            self._samples.clear()  # the service restarted with other counts: start over
        self._samples.append((at, total))
        while len(self._samples) > 2 and at - self._samples[1][0] >= self.window_seconds:
            self._samples.popleft()
        first_at, first_total = self._samples[0]
        if at - first_at < 0.5:
            return None
        return (total - first_total) / (at - first_at)


def fill_buckets(points: list[Point], buckets: list[datetime], zero: int | Decimal) -> list[Point]:
    """Every bucket of the window, per currency (money) or once (counts), missing ones as 0."""
    currencies = sorted({p.currency for p in points if p.currency is not None})
    keys: list[str | None] = list(currencies) if currencies else [None]
    given = {(p.bucket, p.currency): p for p in points}
    return [
        given.get((bucket, currency)) or Point(bucket, zero, currency)
        for currency in keys
        for bucket in buckets
    ]


def list_sources(stats: Mapping[str, Any]) -> list[str]:
    """Sources that have sent anything, busiest first (the unknown-source bucket left out)."""
    sources: Mapping[str, Mapping[str, Any]] = stats.get("sources", {})
    ranked = sorted(
        (name for name in sources if name != UNKNOWN_SOURCE),
        key=lambda name: (-sum(int(sources[name].get(o, 0)) for o in OUTCOMES), name),
    )
    return ranked


#: Why a stored order is left out of the figures, as /api/v1/ingest/stats names it.
NOT_COUNTED_REASONS = ("test", "cancelled", "deleted")


def build_health(
    stats: Mapping[str, Any], current: Figures, source: str | None, rate: float | None
) -> Health:
    counts: Mapping[str, Any]
    if source:
        counts = stats.get("sources", {}).get(source) or {}
        reasons: Mapping[str, int] = counts.get("rejected_by_reason", {})
        last = counts.get("last_delivery_at")
    else:
        counts = stats.get("totals", {})
        merged: dict[str, int] = {}
        for per_source in stats.get("sources", {}).values():
            for reason, count in per_source.get("rejected_by_reason", {}).items():
                merged[reason] = merged.get(reason, 0) + int(count)
        reasons = merged
        last = stats.get("last_delivery_at")
    uncounted: Mapping[str, Any] = (
        counts.get("not_counted") if source else stats.get("not_counted")
    ) or {}
    return Health(
        not_counted=int(uncounted.get("orders", 0)),
        not_counted_reasons=tuple(
            (reason, int(uncounted.get(reason, 0)))
            for reason in NOT_COUNTED_REASONS
            if uncounted.get(reason)
        ),
        accepted=int(counts.get("accepted", 0)),
        duplicate=int(counts.get("duplicate", 0)),
        quarantined=int(counts.get("quarantined", 0)),
        rejected=int(counts.get("rejected", 0)),
        rejected_by_reason=tuple(sorted(reasons.items(), key=lambda item: (-item[1], item[0]))),
        last_delivery_at=_time(last),
        deliveries_per_second=rate,
        queue_depth=int(stats.get("queue_depth", 0)),
        writer_healthy=bool(stats.get("writer_healthy", True)),
        freshness_seconds=current.freshness_seconds,
        watermark=current.watermark,
        as_of=current.as_of,
        events_waiting=_events_waiting(stats, current),
        log_lag=LogLag.from_stats(stats),
    )


def _events_waiting(stats: Mapping[str, Any], current: Figures) -> int | None:
    """Stored events not folded yet. The stats are read before the figures, so the figures may
    include more than the stats had stored: never below 0."""
    stored = stats.get("events_stored_through")
    if stored is None:
        return None
    return max(0, int(stored) - current.events_folded_through)


def delivery_total(stats: Mapping[str, Any], source: str | None) -> int:
    counts = stats.get("sources", {}).get(source, {}) if source else stats.get("totals", {})
    return sum(int(counts.get(outcome, 0)) for outcome in OUTCOMES)
