"""`shoppulse dashboard` finds the service by itself; `shoppulse up --demo` runs everything."""

from __future__ import annotations

import re
import socket
import stat
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from shoppulse.cli import app
from shoppulse.commands._processes import port_in_use
from shoppulse.commands.dashboard import DEFAULT_API_URL, resolve_api_url, streamlit_command
from shoppulse.commands.up import command_hint
from shoppulse.discovery import discovery_path
from shoppulse.settings import Settings
from tests.dashboard.store import SHOPIFY, fresh_id, order_payload, wait_for
from tests.e2e.server import ServiceProcess
from tests.e2e.up import running_up
from tests.helpers.ports import free_port

CLI = [sys.executable, "-c", "from shoppulse.cli import main; main()"]


@pytest.mark.slow
def test_the_dashboard_finds_the_running_service_beside_its_database(
    service: ServiceProcess, tmp_path: Path
) -> None:
    settings = Settings(db_path=service.db)
    assert resolve_api_url(None, settings) == (
        service.base_url,
        f"the service running on {service.db}",
    )
    assert resolve_api_url("http://10.0.0.5:9000/", settings) == ("http://10.0.0.5:9000", "--api")
    elsewhere = Settings(db_path=tmp_path / "nothing-runs-here.duckdb")
    assert resolve_api_url(None, elsewhere)[0] == DEFAULT_API_URL
    command = streamlit_command(service.base_url, 8600)
    assert command[-2:] == ["--api", service.base_url]
    assert command[command.index("--server.address") + 1] == "127.0.0.1"


def test_a_taken_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert port_in_use("127.0.0.1", port)
        result = CliRunner().invoke(
            app, ["dashboard", "--api", "http://127.0.0.1:1", "--port", str(port)]
        )
    assert result.exit_code == 2
    assert f"port {port} is already in use" in result.output


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_up_demo_runs_service_dashboard_and_signed_demo_store_and_stops_on_ctrl_c(
    tmp_path: Path,
) -> None:
    api_port, board_port = free_port(), free_port()
    db = tmp_path / "data" / "shoppulse.duckdb"
    command = [
        *CLI, "up", "--demo", "--db", str(db),
        "--port", str(api_port), "--dashboard-port", str(board_port),
    ]  # fmt: skip
    with running_up(command, tmp_path) as run:
        printed = run.printed
        assert f"http://127.0.0.1:{board_port}" in printed
        assert f"http://127.0.0.1:{api_port}/webhooks/demo" in printed
        assert re.search(r"Commands\s+\S*shoppulse --help", printed), printed
        secret_line = re.search(r"Demo secret\s+([0-9a-f]{48})", printed)
        assert secret_line, printed
        secret = secret_line.group(1)
        config = db.parent / "demo-sources.toml"
        assert secret in config.read_text()
        assert stat.S_IMODE(config.stat().st_mode) == 0o600

        api = f"http://127.0.0.1:{api_port}"
        health = httpx.get(f"http://127.0.0.1:{board_port}/_stcore/health", timeout=5)
        assert health.status_code == 200
        stats = wait_for(
            lambda: httpx.get(f"{api}/api/v1/ingest/stats", timeout=5).json(),
            lambda body: body["sources"].get("demo", {}).get("accepted", 0) >= 5,
            timeout=30,
        )
        assert stats["sources"]["demo"]["rejected"] == 0  # the demo store signs correctly
        body = orjson.dumps(order_payload(42, datetime.now(UTC), gross="10.00", discounts="0.00"))
        headers = SHOPIFY.sign(
            body, secret, topic="orders/create", delivery_id=fresh_id(), timestamp=int(time.time())
        )
        sent = httpx.post(f"{api}/webhooks/demo", content=body, headers=headers, timeout=5)
        assert sent.status_code == 200, sent.text  # the printed secret is the source's secret
        assert discovery_path(db).exists()
    said = run.output()
    assert run.code == 0, said
    assert "stopping the demo store" in said and "stopped." in said
    assert not port_in_use("127.0.0.1", api_port)
    assert not port_in_use("127.0.0.1", board_port)
    assert not discovery_path(db).exists()  # the service shut down cleanly


def test_the_summary_says_how_to_run_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """`make` installs `shoppulse` into .venv, which is not on PATH: say its path then."""
    bin_dir = Path(sys.executable).parent
    monkeypatch.chdir(bin_dir.parent.parent)
    assert command_hint("") == (
        f"{bin_dir.relative_to(Path.cwd())}/shoppulse --help  "
        f"(or `source {bin_dir.relative_to(Path.cwd())}/activate` first)"
    )
    assert command_hint(str(bin_dir)) == "shoppulse --help"
