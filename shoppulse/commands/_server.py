"""What every server command shares (`serve`, `intake`, `store`): logging, checked sources, and
uvicorn with the same limits, TLS and shutdown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ingest.settings import Settings
from ingest.sources import ConfigError, Source, check_secrets
from shoppulse.commands._errors import err, fail
from shoppulse.commands._settings import load_configured_sources, make_settings


def server_settings(
    log_level: str, config: Path | None = None, db: Path | None = None, **overrides: Any
) -> Settings:
    """The settings of a server command, once its logging is set up at `log_level`."""
    from shoppulse.logs import configure_logging

    configure_logging(log_level)
    return make_settings(config, db, **overrides)


def checked_sources(settings: Settings) -> dict[str, Source]:
    """The configured sources of a process that takes webhooks, with their secrets checked (and
    the loud warning of --insecure-demo); exits with a clear message when they cannot be used."""
    if (settings.ssl_certfile is None) != (settings.ssl_keyfile is None):
        raise fail("HTTPS needs both --ssl-certfile and --ssl-keyfile")
    try:
        sources = load_configured_sources(settings)
        unsigned = check_secrets(sources, insecure_demo=settings.insecure_demo)
    except ConfigError as exc:
        raise fail(str(exc)) from None
    if settings.insecure_demo:
        err.print(
            "[bold yellow]WARNING: --insecure-demo:[/] deliveries to "
            f"{', '.join(unsigned) or 'no source'} are accepted WITHOUT signature checks. "
            "Anyone who can reach this port can write data. Use only for a local demo."
        )
    return sources


def listen_url(settings: Settings) -> str:
    return f"{'https' if settings.ssl_certfile else 'http'}://{settings.host}:{settings.port}"


def run_app(application: Any, settings: Settings) -> None:
    """Serve `application` with uvicorn as every ShopPulse server does (limits, TLS, shutdown)."""
    import uvicorn

    uvicorn.run(
        application,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        timeout_keep_alive=5,
        timeout_graceful_shutdown=10,
        h11_max_incomplete_event_size=64 * 1024,
        ssl_certfile=str(settings.ssl_certfile) if settings.ssl_certfile else None,
        ssl_keyfile=str(settings.ssl_keyfile) if settings.ssl_keyfile else None,
    )
