"""`shoppulse reconcile` with the service stopped (it opens the file) and running (it asks it)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner, Result

from shoppulse.cli import app as cli
from shoppulse.commands.reconcile import since_moment
from shoppulse.database import open_database
from tests.conftest import SECRET
from tests.e2e.server import ServiceProcess
from tests.ingest.bigcommerce_stand_in import v2_order
from tests.ingest.store_api_stand_in import BC_HASH, BC_TOKEN, StoreApi, running_store_api

RECENT = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)  # within the overlap


@pytest.fixture
def api() -> Iterator[StoreApi]:
    with running_store_api() as server:
        server.bc_orders = [
            v2_order(250, created=RECENT, modified=RECENT),
            v2_order(251, created=RECENT, modified=RECENT + timedelta(minutes=1)),
        ]
        yield server


def config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "sources.toml"
    path.write_text(
        f'[[sources]]\nid = "bc"\nprovider = "bigcommerce"\nsecrets = ["{SECRET}"]\n'
        f'store_hash = "{BC_HASH}"\napi_token = "{BC_TOKEN}"\napi_base_url = "{url}"\n'
    )
    return path


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={"COLUMNS": "200"})


def test_since_takes_a_span_or_a_time() -> None:
    now = datetime(2026, 1, 2, tzinfo=UTC)
    assert since_moment("24h", now) == datetime(2026, 1, 1, tzinfo=UTC)
    assert since_moment("90m", now) == now - timedelta(minutes=90)
    assert since_moment("2025-12-01", now) == datetime(2025, 12, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="neither a span"):
        since_moment("yesterday", now)


def test_reconcile_with_the_service_stopped(tmp_path: Path, api: StoreApi) -> None:
    db = tmp_path / "data" / "shoppulse.duckdb"
    open_database(db).close()
    common = ["--config", str(config(tmp_path, api.url)), "--db", str(db)]

    dry = run("reconcile", "--since", "1d", "--dry-run", *common)
    assert dry.exit_code == 0, dry.output
    assert "dry run: nothing stored" in dry.output and "would be filled" in dry.output

    first = run("reconcile", "--since", "1d", *common)
    assert first.exit_code == 0, first.output
    assert "│ bc     │ ok     │       2 │       0 │       2 │" in first.output
    assert "from the service's next start" in first.output
    second = run("reconcile", "--source", "bc", *common)  # from where the first run started
    assert second.exit_code == 0, second.output
    assert "│ bc     │ ok     │       2 │       2 │       0 │" in second.output, second.output

    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT count(*) FROM deliveries").fetchone()
        runs = con.execute(
            "SELECT dry_run, missing FROM reconciliation_runs ORDER BY run_id"
        ).fetchall()
    assert rows == (2,)
    assert runs == [(True, 2), (False, 2), (False, 0)]

    bad = run("reconcile", "--since", "soon", *common)
    assert bad.exit_code == 2 and "neither a span" in bad.output
    unknown = run("reconcile", "--source", "nope", *common)
    assert unknown.exit_code == 2 and "'nope' is not in" in unknown.output


def test_rejected_credentials_exit_non_zero(tmp_path: Path, api: StoreApi) -> None:
    db = tmp_path / "data" / "shoppulse.duckdb"
    open_database(db).close()
    api.faults = [(403, {}, None)]
    result = run("reconcile", "--config", str(config(tmp_path, api.url)), "--db", str(db))
    assert result.exit_code == 1
    assert "credentials_rejected" in result.output and BC_TOKEN not in result.output


@pytest.mark.slow
def test_reconcile_asks_the_running_service(tmp_path: Path, api: StoreApi) -> None:
    sources = config(tmp_path, api.url)
    db = tmp_path / "data" / "shoppulse.duckdb"
    service = ServiceProcess(
        sources, db, workdir=tmp_path, env={"SHOPPULSE_RECONCILE_INTERVAL_SECONDS": "0"}
    )
    with service:
        result = run("reconcile", "--since", "1d", "--config", str(sources), "--db", str(db))
        assert result.exit_code == 0, result.output
        assert "asking it at" in result.output
        assert "│ bc     │ ok     │       2 │       0 │       2 │" in result.output
        with service.client() as http:
            status = http.get("/api/v1/reconciliation").json()["sources"]["bc"]
            assert status["missed_7d"] == 2 and status["missed_7d_by_kind"] == {"order": 2}
            window = {
                "from": (RECENT - timedelta(days=1)).isoformat(),
                "to": (RECENT + timedelta(days=1)).isoformat(),
            }
            deadline = time.monotonic() + 20  # the service folds the filled orders in a moment
            while http.get("/api/v1/metrics", params=window).json()["orders"] != 2:
                assert time.monotonic() < deadline, "the filled orders were not folded"
                time.sleep(0.1)
