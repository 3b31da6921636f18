"""The real service in a subprocess: `shoppulse serve` on 127.0.0.1, started and stopped by tests.

End-to-end tests (crash recovery, dashboard, SQL access) start the service the same way:

    with ServiceProcess.for_sources(tmp_path, {"acme": ("shopify", "secret")}) as service:
        httpx.post(f"{service.base_url}/webhooks/acme", ...)

Every wait is bounded, output goes to a log file under the test's directory (its tail is put into
any error), and the process is always ended when the `with` block or the fixture ends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

import httpx

from tests.helpers.ports import free_port

START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
CLEAN_EXIT = frozenset({0, -signal.SIGTERM})


class ServiceError(Exception):
    """The service did not start or stop as expected; the message holds its log's tail."""


def http_client(base_url: str, *, timeout: float = 10.0) -> httpx.Client:
    """An httpx client for `base_url` (use it as a context manager)."""
    return httpx.Client(base_url=base_url, timeout=timeout)


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def write_sources(path: Path, sources: Mapping[str, tuple[str, ...]]) -> Path:
    """Write a sources file: `{source_id: (provider, secret, ...)}`."""
    blocks = []
    for source_id, (provider, *secrets) in sources.items():
        secret_list = ", ".join(_toml_string(secret) for secret in secrets)
        blocks.append(
            f"[[sources]]\nid = {_toml_string(source_id)}\nprovider = {_toml_string(provider)}\n"
            f"secrets = [{secret_list}]\n"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(blocks), encoding="utf-8")
    return path


def service_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without SHOPPULSE_* variables (tests say what they mean), plus `extra`."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("SHOPPULSE_")}
    env.update(extra or {})
    return env


class ServiceProcess:
    """One `shoppulse serve` subprocess; `start()` may be called again after `kill()`/`stop()`."""

    def __init__(
        self,
        config: Path,
        db: Path,
        *,
        workdir: Path,
        port: int | None = None,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.db = db
        self.workdir = workdir
        self.port = port if port is not None else free_port()
        self.args = list(args)
        self.env = service_env(env)
        self.log_path = workdir / "service.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @classmethod
    def for_sources(
        cls,
        workdir: Path,
        sources: Mapping[str, tuple[str, ...]],
        *,
        port: int | None = None,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> ServiceProcess:
        """A service over a fresh sources file and database under `workdir` (not yet started).

        `sources` maps each source id to `(provider, secret, ...)`.
        """
        config = write_sources(workdir / "sources.toml", sources)
        db = workdir / "data" / "shoppulse.duckdb"
        return cls(config, db, workdir=workdir, port=port, args=args, env=env)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "shoppulse.cli",
            "serve",
            "--config",
            str(self.config),
            "--db",
            str(self.db),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *self.args,
        ]

    def client(self, *, timeout: float = 10.0) -> httpx.Client:
        """An httpx client for this service (use it as a context manager)."""
        return http_client(self.base_url, timeout=timeout)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def log_problems(self) -> list[str]:
        """Log lines at warning level or above, and tracebacks (the service logs JSON lines)."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        return [
            line
            for line in text.splitlines()
            if '"level":"warning"' in line
            or '"level":"error"' in line
            or '"level":"critical"' in line
            or line.startswith("Traceback")
        ]

    def start(self, timeout: float = START_TIMEOUT) -> Self:
        """Start the service and wait until /healthz answers (raise ServiceError otherwise)."""
        if self.running:
            raise ServiceError("the service is already running")
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts}: {' '.join(self.command())}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.command(),
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.kill()
            raise
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        with self.client(timeout=1.0) as client:
            while True:
                if self.process is None or self.process.poll() is not None:
                    code = None if self.process is None else self.process.returncode
                    raise ServiceError(
                        f"the service exited with code {code} before it was ready:\n"
                        f"{self.log_tail()}"
                    )
                try:
                    if client.get("/healthz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise ServiceError(
                        f"the service was not ready within {timeout:.0f} s:\n{self.log_tail()}"
                    )
                time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: the process dies at once, as in a power cut or an OOM kill."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired as exc:
            raise ServiceError(f"pid {self.process.pid} survived SIGKILL") from exc

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM and wait for a graceful exit; SIGKILL (and raise) if it takes longer.

        Returns the exit code: uvicorn finishes its shutdown (the lifespan closes the database)
        and then re-raises the signal, so a clean stop is -SIGTERM (or 0).
        """
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise ServiceError(
                    f"the service did not stop within {timeout:.0f} s of SIGTERM:\n"
                    f"{self.log_tail()}"
                ) from None
        return self.process.returncode

    def __enter__(self) -> Self:
        if not self.running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.stop()
        else:
            self.kill()


class ServiceFactory(Protocol):
    """What the `service_factory` fixture hands a test: makes a service (not started)."""

    def __call__(
        self,
        sources: Mapping[str, tuple[str, ...]] | None = None,
        *,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> ServiceProcess: ...
