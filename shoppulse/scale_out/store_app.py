"""The store: the embedded service (DuckDB, writer, metrics, publishing, read API) fed by the log.

It is `shoppulse serve` with a log consumer attached; the dashboard and `shoppulse sql` point at it
unchanged. It still answers webhooks sent to it directly (the same endpoint as `serve`), which
helps while moving a store's senders to intake replicas.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from ingest.intake import Clock, utc_now
from ingest.sources import Source
from shoppulse.scale_out.connection import close_quietly
from shoppulse.scale_out.consumer import LogConsumer
from shoppulse.scale_out.permissions import store_role
from shoppulse.scale_out.settings import LogSettings
from shoppulse.scale_out.stream import open_checked
from shoppulse.service import Service, create_app
from shoppulse.settings import Settings


def create_store_app(
    settings: Settings,
    log_settings: LogSettings,
    sources: dict[str, Source],
    *,
    log_sources: list[str] | None = None,
    clock: Clock = utc_now,
) -> FastAPI:
    """The store's app: it consumes the deliveries of `log_sources` (all without) from the log."""

    @asynccontextmanager
    async def consume(service: Service) -> AsyncIterator[None]:
        nc, js, _ = await open_checked(
            log_settings,
            name="shoppulse-store",
            max_body_bytes=settings.max_body_bytes,
            inbox=store_role(log_settings.stream, log_sources).inbox,
        )
        consumer = LogConsumer(
            nc,
            js,
            log_settings,
            service.writer,
            service.stats,
            sources=log_sources,
            retry_after_seconds=settings.retry_after_seconds,
        )
        service.stats.add_section(
            "log",
            lambda: {
                "url": log_settings.display_url,
                "role": "store",
                "consumer": consumer.name,
                **consumer.lag.as_dict(),
            },
        )
        service.intake.readiness_checks.append(consumer.readiness_problem)
        try:
            await consumer.start()
            yield
        finally:
            await consumer.stop()
            await close_quietly(nc)

    return create_app(settings, sources, clock, attach=consume)
