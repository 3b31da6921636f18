"""Real nats-server processes with JetStream on 127.0.0.1, for the scale-out tests.

Each node gets free ports and its own store directory under the test's tmp_path; it is started
with the `nats-server` of the `scale-out` extra, waited for (its /healthz, JetStream included) and
stopped by PID — SIGTERM, or SIGKILL for the fault tests.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import httpx

from shoppulse.scale_out.connection import connect
from shoppulse.scale_out.server import ServerConfig
from shoppulse.scale_out.settings import LogSettings
from shoppulse.scale_out.stream import StreamSpec, ensure_stream
from tests.helpers.ports import free_port

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


class NatsNode:
    def __init__(self, workdir: Path, config: ServerConfig) -> None:
        self.workdir = workdir
        self.config = config
        self.config_path = config.write(workdir / f"{config.name}.conf")
        self.log_path = workdir / f"{config.name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return self.config.url

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, *, wait: bool = True) -> NatsNode:
        """Start the node (and wait until it is ready, with `wait`).

        A free port can be taken by another process between the moment it was picked and the
        server's bind. A node outside a cluster (nothing else names its ports) that fails to
        bind at its first start is moved to new free ports and started again, at most twice.
        """
        first_start = self.process is None
        for attempt in range(3):
            with self.log_path.open("ab") as log:
                self.process = subprocess.Popen(
                    self.config.command(self.config_path),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            if not wait:
                return self
            try:
                self.wait_ready()
                return self
            except RuntimeError:
                movable = first_start and self.config.cluster_port is None and attempt < 2
                if not movable or "address already in use" not in self.log_tail():
                    raise
            self.config = replace(self.config, port=free_port(), http_port=free_port())
            self.config_path = self.config.write(self.config_path)
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Until /healthz says the server and JetStream are up (in a cluster: once current)."""
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.config.http_port}/healthz"
        while True:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"nats-server {self.config.name} exited:\n{self.log_tail()}")
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"nats-server {self.config.name} not ready:\n{self.log_tail()}")
            time.sleep(0.05)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def kill(self) -> None:
        """SIGKILL by PID."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(STOP_TIMEOUT)

    def stop(self) -> None:
        """SIGTERM by PID, SIGKILL if it does not exit in time."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill()


def single_node(workdir: Path, *, name: str = "n1") -> NatsNode:
    workdir.mkdir(parents=True, exist_ok=True)
    config = ServerConfig(name, free_port(), free_port(), workdir / f"{name}-store")
    return NatsNode(workdir, config)


def cluster(workdir: Path, size: int = 3) -> list[NatsNode]:
    workdir.mkdir(parents=True, exist_ok=True)
    routes = [free_port() for _ in range(size)]
    return [
        NatsNode(
            workdir,
            ServerConfig(
                f"n{i + 1}",
                free_port(),
                free_port(),
                workdir / f"n{i + 1}-store",
                cluster_port=routes[i],
                routes=tuple(routes),
            ),
        )
        for i in range(size)
    ]


def create_stream(url: str, spec: StreamSpec | None = None) -> None:
    """What `shoppulse log init` does, for fixtures (the command itself is tested separately)."""
    settings = LogSettings(url=url)

    async def run() -> None:
        nc = await connect(settings, name="test-log-init")
        try:
            js = nc.jetstream(timeout=10.0)
            deadline = time.monotonic() + START_TIMEOUT
            while True:  # a fresh cluster takes a moment to elect its meta leader
                try:
                    await ensure_stream(js, spec or StreamSpec(settings.stream))
                    return
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.2)
        finally:
            await nc.close()

    asyncio.run(run())
