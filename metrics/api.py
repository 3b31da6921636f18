"""The read API: window figures and time series as JSON."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

import duckdb
from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from ingest.errors import UnknownSource
from ingest.timezones import UTC_NAME, checked_timezone
from metrics.catalog import METRICS
from metrics.query import Grain, Window, known_metric, timeseries, window_figures
from metrics.recompute import check
from metrics.worker import MetricsWorker


@dataclass(frozen=True)
class TimeZones:
    """Which IANA zone day and hour buckets follow: a source's own, else the display zone."""

    display: str = UTC_NAME
    sources: Mapping[str, str] = field(default_factory=dict)

    def of(self, source: str | None) -> str:
        return self.sources.get(source, self.display) if source else self.display


@dataclass
class MetricsContext:
    con: duckdb.DuckDBPyConnection
    clock: Callable[[], datetime]
    worker: MetricsWorker
    #: The source ids a `source` filter may name: configured, or that sent deliveries.
    known_sources: Callable[[], Collection[str]]
    zones: TimeZones = field(default_factory=TimeZones)

    def require_source(self, source: str | None) -> None:
        """Raise UnknownSource (404) for a `source` filter that names no source at all."""
        if not source:
            return
        known = self.known_sources()
        if source in known:
            return
        listed = ", ".join(sorted(known)[:20]) or "none"
        raise UnknownSource(
            f"unknown source '{source[:80]}': no source of that id is configured or has sent "
            f"deliveries (known sources: {listed})"
        )

    def abandonment_rules(self) -> dict[str, float]:
        """When an open cart or checkout counts as abandoned (what makes a rate provisional)."""
        engine = self.worker.engine
        return {
            "cart_abandon_after_seconds": engine.cart_abandon_after.total_seconds(),
            "checkout_abandon_after_seconds": engine.checkout_abandon_after.total_seconds(),
        }

    def check(self) -> dict[str, Any]:
        """Fold what is pending, then compare with a full recompute."""
        self.worker.fold_now()
        engine = self.worker.engine
        differences = check(
            self.con.cursor(),
            cart_abandon_after=engine.cart_abandon_after,
            checkout_abandon_after=engine.checkout_abandon_after,
        )
        return {
            "equal": not differences,
            "differences": [
                {"table": d.table, "only_in": d.side, "row": [str(v) for v in d.row]}
                for d in differences[:100]
            ],
            "difference_count": len(differences),
        }


class CurrencyFigures(BaseModel):
    currency: str | None = Field(description="ISO 4217 code; null for orders without amounts.")
    orders: int
    gross_sales: str | None = Field(description="Decimal string.")
    discounts: str | None
    returns: str | None
    net_sales: str | None
    aov: str | None = Field(description="(gross_sales - discounts) / orders; null with no orders.")


class WindowFigures(BaseModel):
    source: str | None = Field(description="The source filtered on; null for all sources.")
    from_: str = Field(alias="from", description="Window start (inclusive, minute-aligned).")
    to: str = Field(description="Window end (exclusive, minute-aligned).")
    orders: int
    currency: str | None = Field(description="The one currency of the window, else null.")
    gross_sales: str | None = Field(description="Set when the window has one currency.")
    discounts: str | None
    returns: str | None
    net_sales: str | None
    aov: str | None
    by_currency: list[CurrencyFigures]
    orders_without_amounts: int = Field(
        description="Counted orders whose amounts are unknown (excluded from money figures)."
    )
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
    provisional: bool = Field(description="Some carts or checkouts of the window are still open.")
    as_of: str | None = Field(description="When the figures were last evaluated.")
    watermark: str | None = Field(description="received_at of the newest event folded in.")
    freshness_seconds: float | None = Field(description="Now minus the watermark.")
    events_folded_through: int
    cart_abandon_after_seconds: float = Field(
        description="Inactivity after which an unconverted cart counts as abandoned."
    )
    checkout_abandon_after_seconds: float = Field(
        description="Inactivity after which an uncompleted checkout counts as abandoned."
    )


class Point(BaseModel):
    bucket: str
    currency: str | None = None
    value: int | float | str | None


class Series(BaseModel):
    metric: str
    grain: Grain
    source: str | None
    timezone: str = Field(description="The IANA zone whose hours and days the buckets are.")
    from_: str = Field(alias="from")
    to: str
    points: list[Point]


class Zones(BaseModel):
    display_timezone: str = Field(
        description="The zone of figures over all sources (the display_timezone setting)."
    )
    sources: dict[str, str] = Field(
        description="Each configured source's zone (its `timezone`, else the display zone)."
    )


FromQuery = Annotated[
    datetime | None,
    Query(alias="from", description="Window start (UTC); default: 24 hours before the end."),
]
ToQuery = Annotated[
    datetime | None,
    Query(alias="to", description="Window end, exclusive (UTC); default: the end of this minute."),
]
SourceQuery = Annotated[str | None, Query(description="Source id; omitted = all sources.")]
TzQuery = Annotated[
    str | None,
    Query(
        alias="tz",
        description="IANA time zone of hour and day buckets (e.g. Europe/Berlin); default: the "
        "source's `timezone`, or the display_timezone setting for all sources.",
    ),
]


def build_router(get_context: Callable[[], MetricsContext]) -> APIRouter:
    router = APIRouter(prefix="/api/v1/metrics", tags=["metrics"])

    def _window(start: datetime | None, end: datetime | None, source: str | None) -> Window:
        context = get_context()
        context.require_source(source)
        try:
            return Window.around(context.clock(), start, end, source)
        except (ValueError, OverflowError) as exc:  # overflow: a bound at the edge of datetime
            raise HTTPException(422, str(exc)) from None

    unknown_source: dict[int | str, dict[str, Any]] = {
        404: {"description": "`source` names no configured source, nor one that sent deliveries."}
    }

    @router.get(
        "",
        response_model=WindowFigures,
        summary="Every metric for one window",
        responses=unknown_source,
    )
    async def metrics(
        source: SourceQuery = None, start: FromQuery = None, end: ToQuery = None
    ) -> Any:
        ctx = get_context()
        window = _window(start, end, source)
        figures = await run_in_threadpool(window_figures, ctx.con.cursor(), window, ctx.clock())
        return {**figures, **ctx.abandonment_rules()}

    @router.get(
        "/timeseries",
        response_model=Series,
        summary="One metric per time bucket",
        responses=unknown_source,
    )
    async def series(
        metric: Annotated[str, Query(description=f"One of: {', '.join(METRICS)}.")],
        grain: Annotated[Grain, Query(description="Bucket size.")] = "hour",
        source: SourceQuery = None,
        start: FromQuery = None,
        end: ToQuery = None,
        tz: TzQuery = None,
    ) -> Any:
        ctx = get_context()
        try:
            definition = known_metric(metric)
            zone = checked_timezone(tz) if tz is not None else None
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        window = _window(start, end, source)
        zone = zone or ctx.zones.of(source)
        points = await run_in_threadpool(
            timeseries, ctx.con.cursor(), definition, grain, window, zone
        )
        return {
            "metric": metric,
            "grain": grain,
            "source": source,
            "timezone": zone,
            "from": window.start.isoformat(),
            "to": window.end.isoformat(),
            "points": points,
        }

    @router.get("/timezones", response_model=Zones, summary="The time zone of each source's days")
    async def timezones() -> Any:
        zones = get_context().zones
        return {"display_timezone": zones.display, "sources": dict(zones.sources)}

    @router.get("/check", summary="Compare the incremental figures with a full recompute")
    async def recompute_check() -> dict[str, Any]:
        return await run_in_threadpool(get_context().check)

    @router.get("/definitions", summary="What each metric means")
    async def definitions() -> list[dict[str, str]]:
        return [
            {"name": m.name, "kind": m.kind, "label": m.label, "description": m.description}
            for m in METRICS.values()
        ]

    return router
