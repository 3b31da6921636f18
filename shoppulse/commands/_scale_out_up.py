"""`shoppulse up --scale-out`: the pipeline split around a local log, on one machine.

A nats-server with JetStream (its data beside the database, in `nats/`), the stream, one store
on the service port and two intake replicas on the next two ports. The caller then starts the
dashboard against the store and the demo store against both replicas.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path

from shoppulse.commands._processes import Children, port_in_use, wait_until_up
from shoppulse.scale_out.connection import connect
from shoppulse.scale_out.server import ServerConfig
from shoppulse.scale_out.settings import LogSettings
from shoppulse.scale_out.stream import StreamSpec, ensure_stream

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


def _init_stream(url: str) -> None:
    async def run() -> None:
        nc = await connect(LogSettings(url=url), name="shoppulse-up")
        try:
            await ensure_stream(nc.jetstream(timeout=10.0), StreamSpec(LogSettings().stream))
        finally:
            await nc.close()

    asyncio.run(run())


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
    monitor = _free_port()  # only to know when the server is ready
    server = ServerConfig("shoppulse-demo", log_port, monitor, db_path.parent / "nats")
    say(f"starting nats-server (JetStream) on {server.url} ...")
    nats = children.start(
        "log (nats-server)", server.command(server.write(logs / "nats.conf")), logs / "nats.log"
    )
    wait_until_up(f"http://127.0.0.1:{monitor}/healthz", nats)
    _init_stream(server.url)
    api_url = f"http://127.0.0.1:{service_port}"
    say(f"starting the store on {api_url} ...")
    store = children.start(
        "store",
        [
            *cli, "store", "--config", str(config), "--db", str(db_path), "--log", server.url,
            "--host", "127.0.0.1", "--port", str(service_port), "--log-level", "warning",
        ],
        logs / "store.log",
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
        )  # fmt: skip
        wait_until_up(f"{url}/readyz", replica)
    return api_url
