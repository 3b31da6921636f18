"""`shoppulse up --demo --scale-out` runs a local log, a store, two intake replicas, the
dashboard and a demo store spread over both replicas; Ctrl-C stops all of it."""

from __future__ import annotations

import asyncio
import random
import re
import stat
from pathlib import Path

import httpx
import pytest

from shoppulse.commands._processes import port_in_use
from shoppulse.commands.up import CLI
from shoppulse.scale_out.connection import LogUnavailable, connect
from shoppulse.scale_out.settings import LogSettings
from tests.dashboard.store import wait_for
from tests.e2e.up import running_up
from tests.helpers.ports import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def three_free_ports() -> int:
    """A port with the next two free as well (the store and its two replicas), below the
    ephemeral range, where outgoing connections of other tests cannot take them meanwhile."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20_000, 30_000)
        if not any(port_in_use("127.0.0.1", p) for p in (port, port + 1, port + 2)):
            return port
    pytest.skip("no three consecutive free ports")


def test_up_scale_out_runs_everything_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    api_port, board_port, log_port = three_free_ports(), free_port(), free_port()
    replica_ports = [api_port + 1, api_port + 2]
    db = tmp_path / "data" / "shoppulse.duckdb"
    command = [
        *CLI, "up", "--demo", "--scale-out", "--rate", "30", "--db", str(db),
        "--port", str(api_port), "--dashboard-port", str(board_port), "--log-port", str(log_port),
    ]  # fmt: skip
    with running_up(command, tmp_path, start_timeout=90) as run:
        printed = run.printed
        for port in replica_ports:
            assert f"http://127.0.0.1:{port}/webhooks/demo" in printed
        assert re.search(rf"nats://127\.0\.0\.1:{log_port}", printed)

        api = f"http://127.0.0.1:{api_port}"
        stats = wait_for(
            lambda: httpx.get(f"{api}/api/v1/ingest/stats", timeout=5).json(),
            lambda body: body["sources"].get("demo", {}).get("accepted", 0) >= 20,
            timeout=45,
        )
        assert stats["log"]["role"] == "store"
        assert stats["sources"]["demo"]["rejected"] == 0
        for port in replica_ports:  # both replicas took part of the demo traffic
            replica = httpx.get(f"http://127.0.0.1:{port}/api/v1/ingest/stats", timeout=5).json()
            assert replica["sources"]["demo"]["accepted"] > 0, replica
        health = httpx.get(f"http://127.0.0.1:{board_port}/_stcore/health", timeout=5)
        assert health.status_code == 200
        # The log is closed like the embedded demo: a client without the generated token is
        # refused, and the token is in a file only its owner reads, never printed.
        with pytest.raises(LogUnavailable, match="requires credentials"):
            asyncio.run(connect(LogSettings(url=f"nats://127.0.0.1:{log_port}"), name="test"))
        token_file = db.parent / "nats" / "token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text()
        assert len(token) >= 32 and token not in printed
    said = run.output()
    assert run.code == 0, said
    assert "stopping the log (nats-server)" in said and "stopped." in said
    for port in (api_port, board_port, log_port, *replica_ports):
        assert not port_in_use("127.0.0.1", port), port
