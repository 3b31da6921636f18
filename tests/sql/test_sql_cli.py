"""`shoppulse sql` and `shoppulse export` on a stopped service's database, and their refusals."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from ingest.sources import Source
from shoppulse.cli import app
from shoppulse.publish.views import VIEWS
from shoppulse.service import create_app
from shoppulse.settings import Settings
from tests.conftest import FrozenClock
from tests.helpers.app import service_of
from tests.metrics.shop import Shop

T0 = datetime(2026, 1, 10, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def stopped_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A live database with data, its service stopped before the last deliveries were published."""
    db_path = tmp_path_factory.mktemp("cli") / "data" / "shoppulse.duckdb"
    settings = Settings(db_path=db_path, batch_linger_ms=0.5, publish_interval_seconds=3600)
    sources = {
        "acme": Source.model_validate(
            {"id": "acme", "provider": "shopify", "secrets": ["test-secret-1"]}
        )
    }
    app = create_app(settings, sources, clock=FrozenClock(T0 + timedelta(days=1)))
    with TestClient(app) as client:
        shop = Shop(client)
        shop.cart("c1", T0)
        shop.order("o1", T0, gross="100.00", discounts="10.00", cart_token="c1")
        shop.order("o2", T0 + timedelta(hours=1), gross="50.00")
        service_of(client).worker.fold_now()
    yield db_path


RUNNER = CliRunner()


class Result:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def shoppulse(*args: str) -> Result:
    """Run the `shoppulse` command in this process (the same app the console script runs)."""
    result = RUNNER.invoke(app, list(args))
    return Result(result.exit_code, result.stdout, result.stderr)


def test_sql_formats_on_a_stopped_service(stopped_db: Path, tmp_path: Path) -> None:
    query = "SELECT day, orders, gross_sales, aov FROM sales_by_day"
    as_json = shoppulse("sql", "--db", str(stopped_db), "--format", "json", query)
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == [
        {"day": "2026-01-10", "orders": 2, "gross_sales": "150.0000", "aov": "70.0000"}
    ]
    as_csv = shoppulse("sql", "--db", str(stopped_db), "--format", "csv", query)
    assert as_csv.stdout.splitlines() == [
        "day,orders,gross_sales,aov",
        "2026-01-10,2,150.0000,70.0000",
    ]
    table = shoppulse("sql", "--db", str(stopped_db), "SELECT id FROM orders ORDER BY id")
    assert table.returncode == 0 and "o1" in table.stdout and "o2" in table.stdout
    target = tmp_path / "out.parquet"
    parquet = shoppulse(
        "sql", "--db", str(stopped_db), "--format", "parquet", "--output", str(target), query
    )
    assert parquet.returncode == 0, parquet.stderr
    assert duckdb.execute(f"SELECT orders FROM read_parquet('{target}')").fetchall() == [(2,)]


@pytest.mark.parametrize(
    "attack",
    [
        "COPY (SELECT 1) TO 'stolen.csv'",
        "ATTACH 'other.duckdb' AS other",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "CREATE TABLE x AS SELECT 1",
        "DROP VIEW orders",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('{db}')",
        "SELECT 1; DELETE FROM orders",
    ],
)
def test_sql_refuses_writes_and_file_access(stopped_db: Path, tmp_path: Path, attack: str) -> None:
    result = shoppulse("sql", "--db", str(stopped_db), attack.format(db=stopped_db))
    assert result.returncode == 2
    assert "error:" in result.stderr
    assert not Path("stolen.csv").exists()
    # The live data is intact.
    con = duckdb.connect(str(stopped_db), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM events").fetchall() == [(3,)]
    finally:
        con.close()


def test_export_writes_one_consistent_file_per_view(stopped_db: Path, tmp_path: Path) -> None:
    result = shoppulse("export", "--db", str(stopped_db), "--to", str(tmp_path / "snap"))
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "snap" / "manifest.json").read_text())
    assert set(manifest["files"]) == {*VIEWS, "publish_info"}
    assert manifest["rows"]["orders"] == 2 and manifest["snapshot"]["events_through"] == 3
    orders = duckdb.execute(
        f"SELECT count(*) FROM read_parquet('{tmp_path / 'snap' / 'orders.parquet'}')"
    )
    assert orders.fetchall() == [(2,)]


def test_sql_never_cuts_values_at_80_columns(stopped_db: Path) -> None:
    """A result wider than the terminal is shown one block per row, every value whole."""
    wide = RUNNER.invoke(
        app,
        ["sql", "--db", str(stopped_db), "SELECT * FROM orders ORDER BY id"],
        env={"COLUMNS": "80"},
    )
    assert wide.exit_code == 0, wide.stderr
    lines = wide.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert "…" not in wide.stdout
    assert [line.split()[:2] for line in lines if line.startswith("row ")] == [
        ["row", "1"],
        ["row", "2"],
    ]
    for column in ("source", "id", "created_at", "gross_sales"):
        assert any(line.split() and line.split()[0] == column for line in lines), column
    assert "o1" in wide.stdout and "o2" in wide.stdout
    assert "2 rows (one block per row" in wide.stderr
    narrow = RUNNER.invoke(
        app,
        ["sql", "--db", str(stopped_db), "SELECT id FROM orders ORDER BY id"],
        env={"COLUMNS": "80"},
    )
    assert "┃ id" in narrow.stdout and "row 1" not in narrow.stdout  # a table when it fits
