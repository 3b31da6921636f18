"""The service for any ASGI server, configured from the environment:

    SHOPPULSE_CONFIG=sources.toml uvicorn --factory shoppulse.asgi:app

It applies the same start-up checks as `shoppulse serve` (every source has secrets that can
verify a delivery) and logs the same JSON lines on stderr, written within a second and flushed
at shutdown whatever logging set-up the server does.
"""

from __future__ import annotations

from fastapi import FastAPI

from ingest.sources import ConfigError, check_secrets, load_sources
from shoppulse.logs import configure_logging
from shoppulse.service import create_app
from shoppulse.settings import Settings


def app() -> FastAPI:
    """The whole service from `SHOPPULSE_*` settings; raises ConfigError on a bad config."""
    configure_logging()
    settings = Settings()
    if settings.config is None:
        raise ConfigError("no sources file: set SHOPPULSE_CONFIG (see README, Connect your store)")
    sources = load_sources(settings.config)
    check_secrets(sources, insecure_demo=settings.insecure_demo)
    return create_app(settings, sources)
