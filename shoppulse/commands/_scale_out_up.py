"""`shoppulse up --scale-out`: the pipeline split around a local log, on one machine.

A nats-server with JetStream (its data beside the database, in `nats/`), the stream, one store
on the service port and two intake replicas on the next two ports. The caller then starts the
dashboard against the store and the demo store against both replicas.

Closed like the embedded demo: nats-server listens on 127.0.0.1 only and takes only clients with
a token generated for this run (in `nats/token`, readable by its owner only; the roles read it
from SHOPPULSE_LOG_TOKEN_FILE), and the sources file gets a log signing key if it has none.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import Callable
from pathlib import Path

from pydantic import SecretStr

from ingest.source_admin import add_log_signing_key
from ingest.sources import load_sources_file
from shoppulse.commands._processes import Children, port_in_use, wait_until_up
from shoppulse.scale_out.settings import LogSettings
from shoppulse.scale_out.signing import generate_key

NATS_PORT = 4222
REPLICAS = 2


def scale_out_ports(service_port: int, log_port: int) -> list[tuple[str, int]]:
    """Every port `--scale-out` listens on besides the service's, with what uses it."""
    return [
        ("nats-server", log_port),
        *((f"intake replica {n}", service_port + n) for n in range(1, REPLICAS + 1)),
    ]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def intake_urls(service_port: int) -> list[str]:
    return [f"http://127.0.0.1:{service_port + n}" for n in range(1, REPLICAS + 1)]


def busy_port(service_port: int, log_port: int) -> str | None:
    for name, port in scale_out_ports(service_port, log_port):
        if port_in_use("127.0.0.1", port):
            return f"port {port} ({name}) is already in use"
    return None


def _init_stream(settings: LogSettings) -> None:
    from shoppulse.scale_out.connection import connect
    from shoppulse.scale_out.permissions import admin_role
    from shoppulse.scale_out.stream import StreamSpec, ensure_stream

    async def run() -> None:
        nc = await connect(settings, name="shoppulse-up", inbox=admin_role().inbox)
        try:
            await ensure_stream(nc.jetstream(timeout=10.0), StreamSpec(settings.stream))
        finally:
            await nc.close()

    asyncio.run(run())


def _write_private(path: Path, text: str) -> Path:
    """Write `text` to a file only its owner may read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    path.chmod(0o600)
    return path


def start_scale_out(
    children: Children,
    cli: tuple[str, ...],
    *,
    config: Path,
    db_path: Path,
    service_port: int,
    log_port: int,
    logs: Path,
    say: Callable[[str], None],
) -> str:
    """Start the log, the store and the intake replicas; return the store's API URL."""
    from shoppulse.scale_out.server import ServerConfig  # the NATS client, only when scaled out

    if not load_sources_file(config).log.signing_keys:
        add_log_signing_key(config, generate_key())
        say(f"added a log signing key to {config} (intake signs, the store checks)")
    monitor = _free_port()  # only to know when the server is ready
    token = secrets.token_urlsafe(32)
    token_file = _write_private(db_path.parent / "nats" / "token", token)
    server = ServerConfig("shoppulse-demo", log_port, monitor, db_path.parent / "nats", token=token)
    env = {"SHOPPULSE_LOG_TOKEN_FILE": str(token_file)}
    say(f"starting nats-server (JetStream) on {server.url}, clients need its generated token ...")
    nats = children.start(
        "log (nats-server)", server.command(server.write(logs / "nats.conf")), logs / "nats.log"
    )
    wait_until_up(f"http://127.0.0.1:{monitor}/healthz", nats)
    _init_stream(LogSettings(url=server.url, token=SecretStr(token)))
    api_url = f"http://127.0.0.1:{service_port}"
    say(f"starting the store on {api_url} ...")
    store = children.start(
        "store",
        [
            *cli, "store", "--config", str(config), "--db", str(db_path), "--log", server.url,
            "--host", "127.0.0.1", "--port", str(service_port), "--log-level", "warning",
        ],
        logs / "store.log",
        env=env,
    )  # fmt: skip
    wait_until_up(f"{api_url}/readyz", store)
    for n, url in enumerate(intake_urls(service_port), start=1):
        say(f"starting intake replica {n} on {url} ...")
        replica = children.start(
            f"intake replica {n}",
            [
                *cli, "intake", "--config", str(config), "--log", server.url,
                "--host", "127.0.0.1", "--port", str(service_port + n), "--log-level", "warning",
            ],
            logs / f"intake-{n}.log",
            env=env,
        )  # fmt: skip
        wait_until_up(f"{url}/readyz", replica)
    return api_url
