"""The read API: window figures and time series as JSON."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import duckdb
from fastapi import APIRouter, HTTPException, Query
from starlette.concurrency import run_in_threadpool

from ingest.errors import UnknownSource
from ingest.timezones import UTC_NAME, checked_timezone
from metrics.definitions import METRICS, Grain, Metric
from metrics.query import AsOf, Window, known_metric, timeseries, window_figures
from metrics.recompute import check
from metrics.responses import (
    Definition,
    Restatements,
    Series,
    WindowFigures,
    Zones,
)
from metrics.restatements import restatable, restatements
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


FromQuery = Annotated[
    datetime | None,
    Query(alias="from", description="Window start (UTC); default: 24 hours before the end."),
]
ToQuery = Annotated[
    datetime | None,
    Query(alias="to", description="Window end, exclusive (UTC); default: the end of this minute."),
]
SourceQuery = Annotated[str | None, Query(description="Source id; omitted = all sources.")]
AsOfQuery = Annotated[
    datetime | None,
    Query(
        description="Answer the figures exactly as the service reported them at this moment "
        "(UTC; the recent history per fold, older per hour or per day: docs/metrics.md)."
    ),
]


def _about(metric: Metric, grain: str, window: Window) -> dict[str, Any]:
    """What a series or a list of restatements is of."""
    return {
        "metric": metric.name,
        "grain": grain,
        "source": window.source,
        "from": window.start.isoformat(),
        "to": window.end.isoformat(),
        "definition_version": metric.version,
    }


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

    def _window(
        now: datetime,
        start: datetime | None,
        end: datetime | None,
        source: str | None,
        default: timedelta = timedelta(hours=24),
    ) -> Window:
        context = get_context()
        context.require_source(source)
        try:
            return Window.around(now, start, end, source, default)
        except (ValueError, OverflowError) as exc:  # overflow: a bound at the edge of datetime
            raise HTTPException(422, str(exc)) from None

    def _as_of(moment: datetime | None) -> tuple[datetime, AsOf | None]:
        """The moment to answer for (the clock's now, or `as_of`) and what to read."""
        ctx = get_context()
        now = ctx.clock()
        if moment is None:
            return now, None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        if moment > now:
            raise HTTPException(422, f"'as_of' ({moment.isoformat()}) is in the future")
        return moment, AsOf.at(ctx.con.cursor(), moment)

    def _metric(name: str) -> Metric:
        try:
            return known_metric(name)
        except ValueError as exc:
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
        source: SourceQuery = None,
        start: FromQuery = None,
        end: ToQuery = None,
        as_of: AsOfQuery = None,
    ) -> Any:
        ctx = get_context()
        now, reading = _as_of(as_of)
        window = _window(now, start, end, source)
        figures = await run_in_threadpool(window_figures, ctx.con.cursor(), window, now, reading)
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
        as_of: AsOfQuery = None,
    ) -> Any:
        ctx = get_context()
        definition = _metric(metric)
        try:
            zone = checked_timezone(tz) if tz is not None else None
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        now, reading = _as_of(as_of)
        window = _window(now, start, end, source)
        zone = zone or ctx.zones.of(source)
        points = await run_in_threadpool(
            timeseries, ctx.con.cursor(), definition, grain, window, zone, reading
        )
        return {**_about(definition, grain, window), "timezone": zone, "points": points}

    @router.get(
        "/restatements",
        response_model=Restatements,
        summary="What each closed hour or day was first reported as, what it is now, and why",
        responses=unknown_source,
    )
    async def restated(
        metric: Annotated[str, Query(description="A count or money metric.")] = "net_sales",
        grain: Annotated[Literal["hour", "day"], Query(description="Bucket size.")] = "day",
        source: SourceQuery = None,
        start: FromQuery = None,
        end: ToQuery = None,
        settle: Annotated[
            float,
            Query(
                ge=0,
                le=31 * 86400,
                description="Seconds after a bucket's end at which it counts as first reported.",
            ),
        ] = 0,
        tz: TzQuery = None,
    ) -> Any:
        ctx = get_context()
        definition = _metric(metric)
        try:
            restatable(definition)
            zone = checked_timezone(tz) if tz is not None else None
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        now = ctx.clock()
        window = _window(now, start, end, source, default=timedelta(days=7))
        zone = zone or ctx.zones.of(source)
        buckets = await run_in_threadpool(
            restatements,
            ctx.con.cursor(),
            definition,
            grain,
            window,
            timedelta(seconds=settle),
            now,
            zone,
        )
        return {
            **_about(definition, grain, window),
            "timezone": zone,
            "settle_seconds": settle,
            "buckets": buckets,
        }

    @router.get("/timezones", response_model=Zones, summary="The time zone of each source's days")
    async def timezones() -> Any:
        zones = get_context().zones
        return {"display_timezone": zones.display, "sources": dict(zones.sources)}

    @router.get("/check", summary="Compare the incremental figures with a full recompute")
    async def recompute_check() -> dict[str, Any]:
        return await run_in_threadpool(get_context().check)

    @router.get(
        "/definitions",
        response_model=list[Definition],
        summary="What each metric means, its formula and the version of its definition",
    )
    async def definitions() -> list[dict[str, Any]]:
        return [
            {
                "name": m.name,
                "kind": m.kind,
                "label": m.label,
                "description": m.description,
                "formula": m.formula,
                "version": m.version,
            }
            for m in METRICS.values()
        ]

    return router
