"""The composition root: wires ingest, storage and metrics into one FastAPI service.

The service is the only process that opens the live DuckDB file.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass, field

import duckdb
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from ingest.api import build_replay_router, build_router
from ingest.enrichment import OrderEnricher
from ingest.errors import IngestError
from ingest.intake import Clock, Intake, utc_now
from ingest.reconcile.api import build_router as build_reconciliation_router
from ingest.reconcile.service import Reconciler
from ingest.responses import error_response, unexpected_error_answer
from ingest.sources import Source, check_secret_forms
from ingest.stats import IngestStats
from ingest.storage.retention import RawBodyPurge
from ingest.storage.writer import Writer
from metrics.api import MetricsContext, TimeZones
from metrics.api import build_router as build_metrics_router
from metrics.engine import MetricsEngine
from metrics.history import History
from metrics.uncounted import UncountedOrders
from metrics.worker import MetricsWorker
from shoppulse import __version__
from shoppulse.auth import BearerTokenMiddleware
from shoppulse.database import open_database
from shoppulse.discovery import write_discovery
from shoppulse.logs import flush_logs
from shoppulse.publish.publisher import Publisher
from shoppulse.publish.worker import PublishWorker
from shoppulse.settings import Settings
from shoppulse.webhook_route import ShopPulseApp

log = logging.getLogger("shoppulse.service")


@dataclass
class Service:
    """What the running app holds (on `app.state.service`)."""

    settings: Settings
    con: duckdb.DuckDBPyConnection
    writer: Writer
    stats: IngestStats
    intake: Intake
    engine: MetricsEngine
    worker: MetricsWorker
    clock: Clock
    configured_sources: frozenset[str] = frozenset()
    zones: TimeZones = field(default_factory=TimeZones)

    def metrics_context(self) -> MetricsContext:
        return MetricsContext(self.con, self.clock, self.worker, self.known_sources, self.zones)

    def known_sources(self) -> set[str]:
        """Configured sources and those that sent deliveries (a source removed from the
        configuration keeps its history readable)."""
        return set(self.configured_sources) | self.stats.sources()


def time_zones(settings: Settings, sources: dict[str, Source]) -> TimeZones:
    """Each source's zone (its own `timezone`, else the display zone) and the display zone."""
    display = settings.display_timezone
    return TimeZones(display, {sid: s.timezone or display for sid, s in sources.items()})


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(IngestError)
    async def _ingest_error(request: Request, exc: IngestError) -> Response:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        codes = {404: "not_found", 405: "method_not_allowed", 422: "invalid_request"}
        code = codes.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        return error_response(422, "invalid_request", problems or "invalid request")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        return unexpected_error_answer(request.method, request.url.path, exc).response()


def webhook_app(
    settings: Settings,
    get_intake: Callable[[], Intake],
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
    *,
    title: str,
    description: str,
) -> ShopPulseApp:
    """An app whose webhook endpoint is answered by `get_intake()`, with the error bodies and the
    API token of every ShopPulse server (routes are added by the caller)."""
    app = ShopPulseApp(title=title, version=__version__, description=description, lifespan=lifespan)
    install_error_handlers(app)
    app.webhook_intake = get_intake
    if settings.api_token is not None:
        app.add_middleware(BearerTokenMiddleware, token=settings.api_token.get_secret_value())
    return app


#: Runs beside a started service for as long as it serves (e.g. a consumer of a log that feeds
#: the service's writer); entered once everything else runs, left before anything stops.
Attachment = Callable[[Service], AbstractAsyncContextManager[None]]


def create_app(
    settings: Settings,
    sources: dict[str, Source],
    clock: Clock = utc_now,
    attach: Attachment | None = None,
) -> FastAPI:
    """The whole pipeline service. Opening the database happens in the lifespan.

    Raises ConfigError for a secret that could never verify a delivery (however the app is
    started: `shoppulse serve`, `shoppulse up` or an ASGI server given this app)."""
    check_secret_forms(sources)
    holder: dict[str, Service] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        con = open_database(
            settings.db_path,
            checkpoint_wal_mb=settings.checkpoint_wal_mb,
            memory_limit_mb=settings.duckdb_memory_limit_mb,
        )
        stats = IngestStats()
        stats.load(con)
        engine = MetricsEngine(
            con,
            cart_abandon_after=settings.cart_abandon_after,
            checkout_abandon_after=settings.checkout_abandon_after,
            batch_max=settings.fold_batch_max,
            state_write_seconds=settings.metrics_state_write_seconds,
            history=History(settings.metrics_history_per_fold, settings.metrics_history_hourly),
        )
        worker = MetricsWorker(
            engine,
            clock,
            interval=settings.metrics_interval_seconds,
            min_fold_interval=settings.metrics_min_fold_interval_seconds,
        )
        writer = Writer(
            con,
            batch_max=settings.batch_max,
            batch_linger_ms=settings.batch_linger_ms,
            queue_max=settings.queue_max,
            on_commit=worker.notify,
            on_batch=stats.observe_batch,
        )
        intake = Intake(settings, sources, writer, stats, clock)
        service = Service(
            settings,
            con,
            writer,
            stats,
            intake,
            engine,
            worker,
            clock,
            frozenset(sources),
            time_zones(settings, sources),
        )
        holder["service"] = service
        app.state.service = service
        reconciler = Reconciler(con, writer, sources, settings, clock, stats.registry)
        app.state.reconciler = reconciler
        writer.start()
        worker.start()
        app.state.retention = RawBodyPurge(
            writer,
            clock,
            retention_days=settings.raw_body_retention_days,
            interval=settings.purge_interval_seconds,
        )
        app.state.retention.start()
        app.state.uncounted = UncountedOrders(con)
        app.state.enricher = OrderEnricher(con, writer, sources, clock)  # bigcommerce API sources
        app.state.enricher.start()
        reconciler.start()  # sources with store API credentials, every reconcile_interval_seconds
        publisher = Publisher(con, settings.db_path, grace_seconds=settings.publish_grace_seconds)
        app.state.publish_worker = PublishWorker(publisher, settings.publish_interval_seconds)
        app.state.publish_worker.start()
        discovery = write_discovery(settings)
        try:
            async with attach(service) if attach is not None else nullcontext():
                yield
        finally:
            discovery.unlink(missing_ok=True)
            app.state.retention.stop()
            app.state.enricher.stop()
            reconciler.stop()
            writer.stop()
            worker.stop()
            app.state.publish_worker.stop()  # publishes one last time
            con.close()
            flush_logs()  # the process may end right after this (see flush_logs)

    app = webhook_app(
        settings,
        lambda: holder["service"].intake,
        lifespan,
        title="ShopPulse",
        description="Verified, durable webhook intake and live e-commerce metrics.",
    )

    app.include_router(
        build_router(
            lambda: holder["service"].intake,
            lambda: holder["service"].con,
            not_counted=lambda: app.state.uncounted(),
        )
    )
    app.include_router(
        build_replay_router(
            lambda: holder["service"].intake, lambda: holder["service"].writer, sources
        )
    )
    app.include_router(build_metrics_router(lambda: holder["service"].metrics_context()))
    app.include_router(build_reconciliation_router(lambda: app.state.reconciler))
    return app
