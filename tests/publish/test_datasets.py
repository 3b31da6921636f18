"""The dataset definitions on their own: every dataset's columns are what its files hold and
what its view shows (real Parquet files and a real catalog under tmp_path)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb

from shoppulse.publish.catalog import Snapshot, write_catalog
from shoppulse.publish.datasets import DATASETS
from shoppulse.publish.parts import CycleFiles
from shoppulse.publish.views import VIEWS

#: Views that show their dataset as it is; (view, dataset, columns added, columns left out).
PASS_THROUGH = {
    "events": ("events", (), ()),
    "refunds": ("refunds", (), ()),
    "carts": ("carts", (), ()),
    "checkouts": ("checkouts", (), ()),
    "ingest_counts": ("ingest_counts", (), ()),
    "metric_history": ("metric_changes", (), ()),
    "orders": ("orders", ("counted",), ("lines",)),
    "deliveries": ("deliveries", (), ()),
}


def described(con: duckdb.DuckDBPyConnection, relation: str) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()]


def test_every_dataset_is_read_by_a_view() -> None:
    read = {name for name in DATASETS if any(f"{{{name}}}" in v for v in VIEWS.values())}
    assert read == set(DATASETS)


def test_a_written_file_holds_exactly_the_declared_columns_and_types(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "live.duckdb"))
    try:
        cycle = CycleFiles(tmp_path / "analytics", generation=1)
        for dataset in DATASETS.values():
            cols = ", ".join(f"NULL::{c.type} AS {c.name}" for c in dataset.columns)
            # Under a `day=` directory, as partitioned datasets are: the name adds no column.
            [written] = cycle.partitioned(con, dataset, f"SELECT {cols}, 'x' AS _part")
            source = dataset.source_sql([str(cycle.root / written.path)])
            assert described(con, source) == described(con, dataset.empty_sql()), dataset.name
            assert [n for n, _ in described(con, source)] == [c.name for c in dataset.columns]
    finally:
        con.close()


def test_money_is_never_a_float() -> None:
    floats = [
        f"{d.name}.{c.name}"
        for d in DATASETS.values()
        for c in d.columns
        if any(kind in c.type for kind in ("FLOAT", "DOUBLE", "REAL"))
    ]
    assert floats == []


def test_every_view_shows_its_datasets_columns(tmp_path: Path) -> None:
    catalog = tmp_path / "analytics.duckdb"
    write_catalog(
        catalog,
        Snapshot(
            files={},
            published_at=datetime(2026, 1, 1, tzinfo=UTC),
            events_through=0,
            deliveries_through=0,
            fold_seq=0,
            metrics_as_of=None,
            watermark=None,
            location=str(tmp_path / "analytics"),
        ),
    )
    con = duckdb.connect(str(catalog), read_only=True)
    try:
        for view, (name, added, left_out) in PASS_THROUGH.items():
            dataset = DATASETS[name]
            expected = [(n, t) for n, t in described(con, dataset.empty_sql()) if n not in left_out]
            shown = described(con, view)
            assert shown[: len(expected)] == expected, view
            assert [n for n, _ in shown[len(expected) :]] == list(added), view
        # Every view of the catalog is one of VIEWS (plus publish_info), and all of them exist.
        views = {
            r[0]
            for r in con.execute(
                "SELECT view_name FROM duckdb_views() WHERE NOT internal"
            ).fetchall()
        }
        assert views == {*VIEWS, "publish_info"}
    finally:
        con.close()
