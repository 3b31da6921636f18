"""Opening the live file migrates every component's tables, once, in one place."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from ingest.reconcile.runs import RECONCILIATION_SCHEMA
from ingest.storage.schema import INGEST_MIGRATIONS, INGEST_SCHEMA, SchemaError, migrate
from metrics.engine import MetricsEngine
from metrics.schema import METRICS_SCHEMA
from shoppulse.database import LIVE_SCHEMAS, open_database


def _versions(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[int, object]]:
    rows = con.execute("SELECT component, version, applied_at FROM schema_versions").fetchall()
    return {str(component): (int(version), applied_at) for component, version, applied_at in rows}


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {
        str(name) for (name,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
    }


def test_every_component_of_the_live_file_is_migrated_in_data_flow_order() -> None:
    assert [s.component for s in LIVE_SCHEMAS] == ["ingest", "reconciliation", "metrics"]
    assert LIVE_SCHEMAS == (INGEST_SCHEMA, RECONCILIATION_SCHEMA, METRICS_SCHEMA)


@pytest.mark.parametrize("ingest_version", [0, 1])
def test_open_database_migrates_an_older_file_to_the_latest_versions_once(
    tmp_path: Path, ingest_version: int
) -> None:
    path = tmp_path / "live.duckdb"
    con = duckdb.connect(str(path))  # a new file, or one of ingest's first schema version
    if ingest_version:
        migrate(con, "ingest", INGEST_MIGRATIONS[:ingest_version])
    con.close()

    con = open_database(path)
    first = _versions(con)
    tables = _tables(con)
    con.close()
    assert {component: version for component, (version, _) in first.items()} == {
        "ingest": INGEST_SCHEMA.version,
        "reconciliation": RECONCILIATION_SCHEMA.version,
        "metrics": METRICS_SCHEMA.version,
    }
    assert {"deliveries", "events", "reconciliation_runs", "metrics_cursor"} <= tables

    con = open_database(path)  # a second open changes nothing
    try:
        assert _versions(con) == first  # same versions, applied at the same moments
        assert _tables(con) == tables
        MetricsEngine(con)  # finds its tables and ingest's current
    finally:
        con.close()


def test_the_metrics_engine_checks_the_schema_and_never_migrates(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "live.duckdb"))
    try:
        with pytest.raises(SchemaError, match=r"ingest schema is version 0.*open_database"):
            MetricsEngine(con)
        migrate(con, INGEST_SCHEMA.component, INGEST_SCHEMA.migrations)
        with pytest.raises(SchemaError, match=r"metrics schema is version 0.*open_database"):
            MetricsEngine(con)
        assert "metrics" not in _versions(con)  # the engine created nothing
    finally:
        con.close()


def test_a_file_newer_than_this_shoppulse_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "live.duckdb"
    open_database(path).close()
    con = duckdb.connect(str(path))
    con.execute("UPDATE schema_versions SET version = version + 1 WHERE component = 'metrics'")
    con.close()
    with pytest.raises(SchemaError, match=r"metrics schema is version .*upgrade ShopPulse"):
        open_database(path)
