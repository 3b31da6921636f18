"""The scale-out servers (docs/scale-out.md): `shoppulse intake` and `shoppulse store`.

Each role checks the log at start (reachable, the stream present and configured as `log init`
makes it) and refuses to start with a clear message otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ingest.sources import ConfigError, load_sources_file
from shoppulse.commands._errors import err, fail
from shoppulse.commands._options import (
    ConfigOption,
    DbOption,
    InsecureDemoOption,
    ListenHostOption,
    ListenPortOption,
    LogLevelOption,
    LogOption,
    SslCertfileOption,
    SslKeyfileOption,
)
from shoppulse.commands._server import checked_sources, listen_url, run_app, server_settings
from shoppulse.commands.log import log_settings
from shoppulse.scale_out.settings import LogSettings
from shoppulse.scale_out.signing import LogSigner, MissingSigningKey

if TYPE_CHECKING:  # the NATS client loads when a command runs: `shoppulse --help` stays light
    from shoppulse.scale_out.permissions import Role


def role_log_settings(url: str | None, config: Path | None) -> LogSettings:
    """The link settings of intake or the store: the signing keys of the sources file's `[log]`
    section unless the environment gives some; exits when there is none."""
    settings = log_settings(url)
    if not settings.signing_keys and config is not None:
        try:
            keys = load_sources_file(config).log.signing_keys
        except ConfigError as exc:
            raise fail(str(exc)) from None
        settings = settings.model_copy(update={"signing_keys": keys})
    try:
        LogSigner(settings.signing_keys)
    except MissingSigningKey as exc:
        raise fail(str(exc)) from None
    return settings


def _preflight(
    settings: LogSettings, max_body_bytes: int, role: Role, consumer: str | None = None
) -> float:
    """Refuse to start without a usable log (the lifespan checks again; this says it clearly);
    with `consumer`, also without the permission to read it. Returns the stream's maximum age."""
    from nats.js.errors import NotFoundError

    from shoppulse.scale_out.connection import LogUnavailable
    from shoppulse.scale_out.stream import denied_message, open_checked

    async def run() -> float:
        nc, js, info = await open_checked(
            settings, name="shoppulse-check", max_body_bytes=max_body_bytes, inbox=role.inbox
        )
        try:
            if consumer is not None:
                try:
                    await js.consumer_info(settings.stream, consumer, timeout=2.0)
                except NotFoundError:
                    pass  # the store creates it
                except Exception:
                    with contextlib.suppress(Exception):
                        await nc.flush(timeout=1)
                    if nc.denied is None:
                        raise
                    raise LogUnavailable(denied_message(settings, nc.denied)) from None
            return float(info.config.max_age or 0.0)
        finally:
            await nc.close()

    try:
        return asyncio.run(run())
    except LogUnavailable as exc:
        raise fail(str(exc)) from None


def intake(
    config: ConfigOption = None,
    log: LogOption = None,
    host: ListenHostOption = None,
    port: ListenPortOption = None,
    insecure_demo: InsecureDemoOption = False,
    log_level: LogLevelOption = "info",
    ssl_certfile: SslCertfileOption = None,
    ssl_keyfile: SslKeyfileOption = None,
) -> None:
    """Run a stateless intake replica: verified webhooks go to the log (2xx after its ack)."""
    from shoppulse.scale_out.intake_app import create_intake_app
    from shoppulse.scale_out.permissions import intake_role

    settings = server_settings(
        log_level,
        config,
        host=host,
        port=port,
        insecure_demo=insecure_demo or None,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
    )
    sources = checked_sources(settings)
    logs = role_log_settings(log, settings.config)
    _preflight(logs, settings.max_body_bytes, intake_role(logs.stream))
    err.print(
        f"ShopPulse intake listening on {listen_url(settings)} (log {logs.display_url}; "
        f"sources: {', '.join(sources) or 'none'})"
    )
    run_app(create_intake_app(settings, logs, sources), settings)


def store(
    config: ConfigOption = None,
    db: DbOption = None,
    log: LogOption = None,
    sources_filter: Annotated[
        str | None,
        typer.Option(
            "--sources",
            help="Comma-separated source ids this store takes from the log (default: all). "
            "Several stores can each own a disjoint set; `_unknown` takes the rejection counts "
            "of unknown sources.",
        ),
    ] = None,
    host: ListenHostOption = None,
    port: ListenPortOption = None,
    log_level: LogLevelOption = "info",
    ssl_certfile: SslCertfileOption = None,
    ssl_keyfile: SslKeyfileOption = None,
) -> None:
    """Run the store: the log into the DuckDB file, metrics, publishing and the read API."""
    from shoppulse.scale_out.consumer import consumer_name
    from shoppulse.scale_out.permissions import store_role
    from shoppulse.scale_out.store_app import create_store_app

    settings = server_settings(
        log_level,
        config,
        db,
        host=host,
        port=port,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
    )
    sources = checked_sources(settings)
    chosen = sorted({s.strip() for s in (sources_filter or "").split(",") if s.strip()}) or None
    unknown = [s for s in chosen or [] if s not in sources and s != "_unknown"]
    if unknown:
        raise fail(
            f"--sources names {', '.join(unknown)}, not in {settings.config}; "
            f"configured: {', '.join(sources) or 'none'}"
        )
    logs = role_log_settings(log, settings.config)
    role = store_role(logs.stream, chosen)
    max_age = _preflight(logs, settings.max_body_bytes, role, consumer_name(chosen))
    retention = settings.raw_body_retention_days * 86400
    if retention and max_age > retention:
        err.print(
            f"[bold yellow]warning:[/] the log keeps messages {max_age / 86400:g} days, longer "
            f"than raw_body_retention_days ({settings.raw_body_retention_days}): raw bodies "
            "outlive the store's retention there; `shoppulse log init --max-age-days "
            f"{settings.raw_body_retention_days}` (docs/scale-out.md#personal-data-in-the-log)"
        )
    err.print(
        f"ShopPulse store listening on {listen_url(settings)} (database {settings.db_path}; "
        f"log {logs.display_url}; sources: {', '.join(chosen) if chosen else 'all'})"
    )
    run_app(create_store_app(settings, logs, sources, log_sources=chosen), settings)
