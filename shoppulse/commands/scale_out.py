"""The scale-out commands (docs/scale-out.md): `shoppulse log init`, `shoppulse intake` and
`shoppulse store`.

Each role checks the log at start (reachable, the stream present and configured as `log init`
makes it) and refuses to start with a clear message otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ingest.source_admin import add_log_signing_key
from ingest.sources import ConfigError, load_sources_file
from shoppulse.commands._errors import err, fail
from shoppulse.commands._options import (
    ConfigOption,
    DbOption,
    InsecureDemoOption,
    ListenHostOption,
    ListenPortOption,
    LogLevelOption,
    SslCertfileOption,
    SslKeyfileOption,
)
from shoppulse.commands._server import checked_sources, listen_url, run_app, server_settings
from shoppulse.commands._settings import make_settings
from shoppulse.scale_out.settings import DEFAULT_DUPLICATE_WINDOW, DEFAULT_LOG_URL, LogSettings
from shoppulse.scale_out.signing import LogSigner, MissingSigningKey, generate_key

if TYPE_CHECKING:  # the NATS client loads when a command runs: `shoppulse --help` stays light
    from shoppulse.scale_out.permissions import Role

LogOption = Annotated[
    str | None,
    typer.Option(
        "--log",
        help=f"NATS URL(s) of the log, comma-separated. Default: $SHOPPULSE_LOG_URL or "
        f"{DEFAULT_LOG_URL}.",
    ),
]

log_app = typer.Typer(help="The replicated log of the scale-out deployment (NATS JetStream).")


def log_settings(url: str | None) -> LogSettings:
    return LogSettings(url=url) if url else LogSettings()


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


@log_app.command("keygen")
def log_keygen(config: ConfigOption = None) -> None:
    """Add a new signing key to the sources file's `[log]` section, first (it signs after the next
    start of intake), keeping the previous first one (it still verifies). Copy the file to every
    intake replica and store, restart the stores, then the replicas."""
    path = config or make_settings().config
    if path is None:
        raise fail("no sources file: pass --config FILE or set SHOPPULSE_CONFIG")
    try:
        dropped = add_log_signing_key(path, generate_key())
    except ConfigError as exc:
        raise fail(str(exc)) from None
    err.print(
        f"added a log signing key to {path} (first: it signs); the previous one still verifies"
        + (f"; {dropped} older key(s) removed" if dropped else "")
    )


@log_app.command("init")
def log_init(
    log: LogOption = None,
    replicas: Annotated[
        int,
        typer.Option(
            "--replicas",
            min=1,
            max=5,
            help="Copies of every message on distinct servers: 1 (one server) or 3 (a cluster "
            "that survives the loss of one).",
        ),
    ] = 1,
    max_bytes: Annotated[
        str,
        typer.Option(
            "--max-bytes",
            help="Size limit of the stream (e.g. 8GiB, 500MB). When it is reached intake answers "
            "503 until the store's retention frees room.",
        ),
    ] = "8GiB",
    duplicate_window: Annotated[
        float,
        typer.Option(
            "--duplicate-window",
            min=1.0,
            help="Seconds within which a repeated delivery (same source and delivery id) is "
            "recognised by the log itself.",
        ),
    ] = DEFAULT_DUPLICATE_WINDOW,
    max_age_days: Annotated[
        float | None,
        typer.Option(
            "--max-age-days",
            min=0.001,
            help="Days the log keeps a message; older ones are discarded, raw bodies with them. "
            "Default: $SHOPPULSE_LOG_MAX_AGE_DAYS or 7. Keep it at most raw_body_retention_days "
            "and longer than any store outage to ride out.",
        ),
    ] = None,
) -> None:
    """Create the stream of deliveries, or bring it to these settings (idempotent)."""
    from shoppulse.scale_out.connection import LogUnavailable, connect
    from shoppulse.scale_out.permissions import admin_role
    from shoppulse.scale_out.stream import StreamSpec, denied_message, ensure_stream, parse_bytes

    settings = log_settings(log)
    if max_age_days is not None:
        settings = settings.model_copy(update={"max_age_days": max_age_days})
    try:
        size = parse_bytes(max_bytes)
    except ValueError as exc:
        raise fail(str(exc)) from None
    spec = StreamSpec(settings.stream, replicas, size, duplicate_window, settings.max_age_days)

    async def run() -> tuple[str, list[str]]:
        nc = await connect(settings, name="shoppulse-log-init", inbox=admin_role().inbox)
        try:
            return await ensure_stream(nc.jetstream(timeout=10.0), spec)
        except Exception:
            with contextlib.suppress(Exception):  # the server's permission error, if any
                await nc.flush(timeout=1)
            if nc.denied is not None:
                raise LogUnavailable(denied_message(settings, nc.denied)) from None
            raise
        finally:
            await nc.close()

    try:
        outcome, changes = asyncio.run(run())
    except LogUnavailable as exc:
        raise fail(str(exc)) from None
    except Exception as exc:  # the server's refusal (e.g. 3 replicas on one server)
        raise fail(f"the log at {settings.display_url} refused the stream: {exc}") from None
    detail = f": {'; '.join(changes)}" if changes else ""
    err.print(
        f"stream {spec.name} {outcome}{detail} (subjects shoppulse.deliveries.*, "
        f"shoppulse.rejections.*; {replicas} replica{'s' if replicas > 1 else ''}, "
        f"{size} bytes, discard new, duplicate window {duplicate_window:g} s, "
        f"messages kept {spec.max_age_days:g} days)"
    )


@log_app.command("permissions")
def log_permissions(
    stores: Annotated[
        list[str] | None,
        typer.Option(
            "--store",
            help="The --sources of one store (comma-separated; repeat for several stores). "
            "Default: one store that takes every source.",
        ),
    ] = None,
) -> None:
    """Print a nats-server `accounts` block with one user per role and least privilege each.

    Replace the REPLACE-... passwords (or use `nkey: U...` users) and paste it into the server's
    configuration (docs/scale-out.md#permissions).
    """
    from shoppulse.scale_out.permissions import accounts_config, admin_role, intake_role, store_role

    stream = LogSettings().stream
    roles = [intake_role(stream)]
    for entry in stores or [""]:
        chosen = sorted({s.strip() for s in entry.split(",") if s.strip()}) or None
        roles.append(store_role(stream, chosen))
    roles.append(admin_role())
    users = [
        (f'user: "{_user_name(role)}", password: "REPLACE-{_user_name(role)}"', role)
        for role in roles
    ]
    typer.echo(accounts_config(users), nl=False)


def _user_name(role: Role) -> str:
    return role.inbox.removeprefix("_INBOX_")


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
