"""The one place a connection to the log is made: options from settings, then connect.

Everything that talks to NATS (the `log` commands, intake replicas, the store, tests and
benchmarks) connects through `connect`, so credentials or TLS for the links are added here once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from nats.aio.client import Client

from shoppulse.scale_out.settings import LogSettings

log = logging.getLogger("shoppulse.log")


class LogUnavailable(Exception):
    """The log cannot be reached, or its stream is missing or misconfigured."""


def connection_options(settings: LogSettings, client: Client, *, name: str) -> dict[str, Any]:
    """Keyword arguments of `client.connect` for `settings`; `name` shows in the server's
    monitor. Credentials and TLS of the links belong here."""

    async def disconnected() -> None:
        if not client.is_closed:
            log.warning("lost the connection to the log at %s; reconnecting", settings.display_url)

    async def reconnected() -> None:
        log.info("connected to the log again at %s", settings.display_url)

    async def error(exc: Exception) -> None:
        log.debug("log connection: %s", exc)

    return {
        "servers": settings.servers,
        "name": name,
        "connect_timeout": settings.connect_timeout_seconds,
        "allow_reconnect": True,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.5,
        "ping_interval": 10,
        "max_outstanding_pings": 3,
        "disconnected_cb": disconnected,
        "reconnected_cb": reconnected,
        "error_cb": error,
    }


def first_connect_timeout(settings: LogSettings) -> float:
    """How long the first connection may take: two tries of every listed server."""
    return max(5.0, 2 * settings.connect_timeout_seconds * len(settings.servers))


async def connect(settings: LogSettings, *, name: str) -> Client:
    """A connection to the log, or LogUnavailable saying which server could not be reached.

    Once connected, the client reconnects by itself for as long as it runs; the first connection
    is bounded, so that a wrong URL or a log that is down fails at start with a clear message.
    """
    client = Client()
    options = connection_options(settings, client, name=name)
    timeout = first_connect_timeout(settings)
    try:
        async with asyncio.timeout(timeout):
            await client.connect(**options)
            return client
    except TimeoutError:
        problem = f"no server answered within {timeout:g} s"
    except Exception as exc:
        problem = f"{type(exc).__name__}: {exc}"
    raise LogUnavailable(
        f"cannot reach the log at {settings.display_url} ({problem}); is nats-server running "
        "there? (docs/scale-out.md)"
    )


async def close_quietly(client: Client, timeout: int = 2) -> None:
    """Send what is buffered (acknowledgements, counts) if the log is there, then close."""
    try:
        await client.flush(timeout=timeout)
    except Exception as exc:
        log.debug("log connection not flushed before closing: %s", exc)
    await client.close()
