"""The one place a connection to the log is made: options from settings, then connect.

Everything that talks to NATS (the `log` commands, intake replicas, the store, tests and
benchmarks) connects through `connect`, with the link's credentials and TLS
(`shoppulse.scale_out.credentials`). A first connection that fails says why and what to set: the
server refused the credentials or asked for some, its certificate is not trusted, or it does not
speak TLS while the settings require it (then nothing, no credential, is sent to it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from typing import Any

import nats.errors
from nats.aio.client import DEFAULT_INBOX_PREFIX, Client

from shoppulse.scale_out.credentials import DOCS, CredentialsError, LinkSecurity, link_security
from shoppulse.scale_out.settings import LogSettings

log = logging.getLogger("shoppulse.log")

#: The settings that give a link credentials, named when the server asks for some.
CREDENTIAL_SETTINGS = (
    "SHOPPULSE_LOG_CREDS_FILE, SHOPPULSE_LOG_NKEY_SEED_FILE, SHOPPULSE_LOG_TOKEN(_FILE) or "
    "SHOPPULSE_LOG_USER with SHOPPULSE_LOG_PASSWORD(_FILE)"
)


class LogUnavailable(Exception):
    """The log cannot be reached, or its stream is missing or misconfigured."""


class LogClient(Client):
    """A NATS client that refuses a server without TLS when TLS is required (before it sends its
    CONNECT, which carries the credentials) and remembers the last permission the server denied.
    """

    def __init__(self, security: LinkSecurity | None = None) -> None:
        super().__init__()
        self.security = security or LinkSecurity()
        self.denied: str | None = None  # the last "Permissions Violation ..." of the server
        self.starting = True  # until the first connection is made (or given up)

    def _connect_command(self) -> bytes:
        if self.security.tls and not self._server_info.get("tls_required", False):
            raise PlainServer("the server does not offer TLS, which the link requires")
        command: bytes = super()._connect_command()
        return command


class PlainServer(nats.errors.Error):
    """The server speaks plain text but the settings require TLS."""


class _Refused(Exception):
    """A first connection that no retry can fix (credentials, TLS); ends the attempts at once."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def refusal(settings: LogSettings, security: LinkSecurity, exc: BaseException) -> str | None:
    """What to tell the operator about a failed first connection, if retrying cannot help."""
    url = settings.display_url
    text = security.redact(str(exc))
    if isinstance(exc, PlainServer):
        return (
            f"the log at {url} does not offer TLS, but the link requires it (a tls:// URL or "
            "SHOPPULSE_LOG_TLS_CA_FILE); nothing was sent. Enable tls in the server's "
            f"configuration, or fix the URL ({DOCS})"
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"the certificate of the log at {url} is not trusted ({exc.verify_message}); set "
            f"SHOPPULSE_LOG_TLS_CA_FILE to the CA that signed it ({DOCS})"
        )
    if isinstance(exc, ssl.SSLError):
        return (
            f"the TLS handshake with the log at {url} failed ({exc.reason or text}); if the server "
            "verifies clients, set SHOPPULSE_LOG_TLS_CERT_FILE and SHOPPULSE_LOG_TLS_KEY_FILE "
            f"({DOCS})"
        )
    lowered = text.lower()
    if "authorization violation" in lowered or isinstance(exc, nats.errors.AuthorizationError):
        if security.method == "none":
            return (
                f"the log at {url} requires credentials and none are configured; set "
                f"{CREDENTIAL_SETTINGS} ({DOCS})"
            )
        return (
            f"the log at {url} refused {security.hint} (authorization violation); check them "
            f"against the server's accounts, or set the right ones ({DOCS})"
        )
    if "tls" in lowered and ("required" in lowered or "handshake" in lowered):
        return (
            f"the log at {url} requires TLS: use a tls:// URL and set SHOPPULSE_LOG_TLS_CA_FILE "
            f"({DOCS})"
        )
    return None


def connection_options(
    settings: LogSettings,
    client: LogClient,
    *,
    name: str,
    inbox: str = DEFAULT_INBOX_PREFIX.decode(),
) -> dict[str, Any]:
    """Keyword arguments of `client.connect` for `settings`; `name` shows in the server's
    monitor, `inbox` is the prefix of the subjects the server answers on (the role's
    permissions allow only its own, docs/scale-out.md#permissions)."""
    security = client.security

    async def disconnected() -> None:
        if not client.is_closed:
            log.warning("lost the connection to the log at %s; reconnecting", settings.display_url)

    async def reconnected() -> None:
        log.info("connected to the log again at %s", settings.display_url)

    async def error(exc: Exception) -> None:
        text = security.redact(str(exc))
        if "permissions violation" in text.lower():
            client.denied = text.removeprefix("nats: ")
            log.error(
                "the log refused this process a permission: %s (docs/scale-out.md#permissions)",
                client.denied,
            )
            return
        problem = refusal(settings, security, exc)
        if problem is not None and client.starting:  # first connection: no retry helps
            raise _Refused(problem)
        if problem is not None:  # reconnecting: credentials revoked, a certificate expired ...
            log.warning("reconnecting to the log failed: %s", problem)
            return
        log.debug("log connection: %s", text)

    return {
        **security.options,
        "servers": settings.servers,
        "name": name,
        "inbox_prefix": inbox,
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


async def _abandon(client: LogClient) -> None:
    """Close a client whose first connection failed (a failed TLS handshake may leave a socket
    whose close never completes: bounded)."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(2.0):
            await client.close()


async def connect(
    settings: LogSettings, *, name: str, inbox: str = DEFAULT_INBOX_PREFIX.decode()
) -> LogClient:
    """A connection to the log, or LogUnavailable saying what is wrong and what to set.

    Once connected, the client reconnects by itself for as long as it runs; the first connection
    is bounded, so that a wrong URL or a log that is down fails at start with a clear message, and
    refused credentials or an untrusted certificate fail at once.
    """
    try:
        security = link_security(settings)
    except CredentialsError as exc:
        raise LogUnavailable(str(exc)) from None
    client = LogClient(security)
    options = connection_options(settings, client, name=name, inbox=inbox)
    timeout = first_connect_timeout(settings)
    try:
        async with asyncio.timeout(timeout):
            await client.connect(**options)
            client.starting = False
            return client
    except _Refused as exc:
        client.starting = False
        await _abandon(client)
        raise LogUnavailable(exc.problem) from None
    except TimeoutError:
        problem = f"no server answered within {timeout:g} s"
    except Exception as exc:
        problem = f"{type(exc).__name__}: {security.redact(str(exc))}"
    client.starting = False
    await _abandon(client)
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
