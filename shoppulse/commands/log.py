"""`shoppulse log keygen`, `log init` and `log permissions`: the replicated log of the
scale-out deployment (docs/scale-out.md)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Annotated

import typer

from ingest.source_admin import add_log_signing_key
from ingest.sources import ConfigError
from shoppulse.commands._errors import err, fail
from shoppulse.commands._options import ConfigOption, LogOption
from shoppulse.commands._settings import make_settings
from shoppulse.scale_out.settings import DEFAULT_DUPLICATE_WINDOW, LogSettings
from shoppulse.scale_out.signing import generate_key

if TYPE_CHECKING:  # the NATS client loads when a command runs: `shoppulse --help` stays light
    from shoppulse.scale_out.permissions import Role

log_app = typer.Typer(help="The replicated log of the scale-out deployment (NATS JetStream).")


def log_settings(url: str | None) -> LogSettings:
    return LogSettings(url=url) if url else LogSettings()


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
