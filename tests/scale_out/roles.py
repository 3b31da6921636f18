"""`shoppulse intake` and `shoppulse store` in subprocesses on 127.0.0.1 (started, killed and
stopped by PID like the embedded service of tests/e2e)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from shoppulse.commands.up import CLI
from tests.e2e.server import ServiceProcess, write_sources
from tests.scale_out.signed import add_signing_key


class RoleProcess(ServiceProcess):
    """One scale-out role: `intake` (no database) or `store`."""

    def __init__(
        self,
        role: str,
        workdir: Path,
        config: Path,
        log_url: str,
        *,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        super().__init__(
            config, workdir / "data" / "shoppulse.duckdb", workdir=workdir, args=args, env=env
        )
        self.role = role
        self.log_url = log_url
        self.log_path = workdir / f"{role}.log"

    def command(self) -> list[str]:
        database = ["--db", str(self.db)] if self.role == "store" else []
        return [
            *CLI,
            self.role,
            "--config",
            str(self.config),
            *database,
            "--log",
            self.log_url,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *self.args,
        ]


def sources_file(workdir: Path, sources: Mapping[str, tuple[str, ...]]) -> Path:
    """A sources file with `sources` and the tests' log signing key."""
    return add_signing_key(write_sources(workdir / "sources.toml", sources))
