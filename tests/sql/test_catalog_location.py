"""The published catalog opens from any working directory, with any client, whatever form the
database path had, and after its data folder is moved or copied whole."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from fastapi.testclient import TestClient

from ingest.sources import Source
from shoppulse.publish.catalog import catalog_path
from shoppulse.publish.worker import refresh_stopped
from shoppulse.service import create_app
from shoppulse.settings import Settings
from shoppulse.sql import open_catalog
from tests.conftest import FrozenClock
from tests.helpers.app import service_of, state_of
from tests.metrics.shop import Shop
from tests.sql.test_sql_cli import shoppulse

T0 = datetime(2026, 1, 10, 9, 0, tzinfo=UTC)


def serve_and_publish(db_path: Path, sources: dict[str, Source]) -> None:
    """Run the service on `db_path` (in whatever form it is given), store three orders, publish."""
    settings = Settings(db_path=db_path, batch_linger_ms=0.5, publish_interval_seconds=3600)
    app = create_app(settings, sources, clock=FrozenClock(T0 + timedelta(days=1)))
    with TestClient(app) as client:
        shop = Shop(client)
        for n in range(3):
            shop.order(f"o{n}", T0 + timedelta(minutes=n), gross="10.00")
        service = service_of(client)
        service.worker.fold_now()
        service.worker.write_state_now()
        state_of(client).publish_worker.publisher.publish()


def stock_count(catalog: Path) -> int:
    """`SELECT count(*) FROM orders` the way any DuckDB client does it: no ShopPulse code."""
    con = duckdb.connect(str(catalog), read_only=True)
    try:
        return int(con.sql("SELECT count(*) FROM orders").fetchall()[0][0])
    finally:
        con.close()


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    directory = tmp_path / "elsewhere"
    directory.mkdir()
    return directory


def test_a_relative_db_path_gives_a_catalog_that_opens_from_any_directory(
    tmp_path: Path, elsewhere: Path, sources: dict[str, Source], monkeypatch: pytest.MonkeyPatch
) -> None:
    started_in = tmp_path / "service"
    started_in.mkdir()
    monkeypatch.chdir(started_in)
    serve_and_publish(Path("data/shoppulse.duckdb"), sources)  # the default form of --db

    monkeypatch.chdir(elsewhere)
    db_path = started_in / "data" / "shoppulse.duckdb"
    assert stock_count(catalog_path(db_path)) == 3
    result = shoppulse(
        "sql", "--db", str(db_path), "--format", "csv", "SELECT count(*) FROM orders"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["count_star()", "3"]


def test_a_db_path_through_a_symlink_gives_a_catalog_that_opens_through_either_path(
    tmp_path: Path, elsewhere: Path, sources: dict[str, Source], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    serve_and_publish(link / "data" / "shoppulse.duckdb", sources)

    monkeypatch.chdir(elsewhere)
    assert stock_count(link / "data" / "analytics.duckdb") == 3
    link.unlink()  # the link was only one way to reach the files
    assert stock_count(real / "data" / "analytics.duckdb") == 3


def test_a_moved_data_folder_opens_at_once_with_shoppulse_and_after_one_publish_with_any_client(
    tmp_path: Path, elsewhere: Path, sources: dict[str, Source], monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_and_publish(tmp_path / "old" / "data" / "shoppulse.duckdb", sources)
    moved = tmp_path / "new" / "place"
    moved.parent.mkdir()
    shutil.move(tmp_path / "old" / "data", moved)
    monkeypatch.chdir(elsewhere)

    # ShopPulse's own connection points the views at the files where they are now.
    con = open_catalog(moved / "analytics.duckdb")
    try:
        assert con.sql("SELECT count(*) FROM orders").fetchall() == [(3,)]
        assert con.sql("SELECT location FROM publish_info").fetchall() == [
            (str((moved / "analytics").resolve()),)
        ]
    finally:
        con.close()
    # `shoppulse sql` (or the service's next start) rewrites the catalog for every client.
    assert refresh_stopped(moved / "shoppulse.duckdb") == "published"
    assert stock_count(moved / "analytics.duckdb") == 3


def test_a_copy_of_the_published_files_alone_opens_without_the_original(
    tmp_path: Path, elsewhere: Path, sources: dict[str, Source], monkeypatch: pytest.MonkeyPatch
) -> None:
    original = tmp_path / "original" / "data"
    serve_and_publish(original / "shoppulse.duckdb", sources)
    copy = tmp_path / "laptop"
    copy.mkdir()
    shutil.copy(original / "analytics.duckdb", copy)
    shutil.copytree(original / "analytics", copy / "analytics")
    shutil.rmtree(original)
    monkeypatch.chdir(elsewhere)

    # No live database beside the copy: `shoppulse sql` reads the catalog as it is.
    result = shoppulse(
        "sql",
        "--db",
        str(copy / "shoppulse.duckdb"),
        "--format",
        "csv",
        "SELECT count(*) FROM orders",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["count_star()", "3"]
