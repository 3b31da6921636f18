"""An intake replica: the embedded service's webhook endpoint, with the log as its sink.

Same statuses, error bodies, limits, signature checks and quarantine decisions as `shoppulse
serve` (it is the same `Intake`); the durable step is the log's acknowledgement instead of a
DuckDB commit. It keeps no state: run as many as the load needs, behind any load balancer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from ingest.api import build_router
from ingest.intake import Clock, Intake, utc_now
from ingest.sources import Source, check_secret_forms
from ingest.stats import IngestStats
from shoppulse.scale_out.connection import close_quietly
from shoppulse.scale_out.permissions import intake_role
from shoppulse.scale_out.settings import LogSettings
from shoppulse.scale_out.sink import LogSink, replica_name
from shoppulse.scale_out.stream import open_checked
from shoppulse.service import webhook_app
from shoppulse.settings import Settings


def create_intake_app(
    settings: Settings,
    log_settings: LogSettings,
    sources: dict[str, Source],
    clock: Clock = utc_now,
) -> FastAPI:
    """The intake replica's app; it connects to the log (and checks the stream) in the lifespan.

    Raises ConfigError for a secret that could never verify a delivery, as `create_app` does."""
    check_secret_forms(sources)
    # A replica has no database: the free-space check of the embedded service does not apply.
    settings = settings.model_copy(update={"min_free_disk_mb": 0})
    holder: dict[str, Intake] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        replica = replica_name()
        nc, js, _ = await open_checked(
            log_settings,
            name=f"shoppulse-intake-{replica}",
            max_body_bytes=settings.max_body_bytes,
            inbox=intake_role(log_settings.stream).inbox,
        )
        sink = LogSink(nc, js, log_settings, replica)
        stats = IngestStats()
        stats.add_section(
            "log", lambda: {"url": log_settings.display_url, "replica": replica, "role": "intake"}
        )
        holder["intake"] = Intake(settings, sources, sink, stats, clock)
        sink.start()
        try:
            yield
        finally:
            await sink.stop()
            await close_quietly(nc)

    app = webhook_app(
        settings,
        lambda: holder["intake"],
        lifespan,
        title="ShopPulse intake",
        description="Verified webhook intake into the ShopPulse log (scale-out).",
    )
    app.include_router(build_router(lambda: holder["intake"]))
    return app
