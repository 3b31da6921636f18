"""The SQL catalog on its own: a real catalog over real Parquet files under tmp_path, opened
read-only with stock duckdb from another directory."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from shoppulse.publish.catalog import (
    Snapshot,
    catalog_path,
    files_location,
    published_dir,
    view_statements,
    write_catalog,
)
from shoppulse.publish.datasets import EVENTS
from shoppulse.publish.parts import CycleFiles

PUBLISHED = datetime(2026, 1, 10, 9, 0, tzinfo=UTC)


def write_events(root: Path, generation: int, lo: int, hi: int) -> str:
    """A real part file of `events` holding event_seq lo..hi; its absolute path."""
    names = ", ".join(
        "range AS event_seq" if c.name == "event_seq" else f"NULL::{c.type} AS {c.name}"
        for c in EVENTS.columns
    )
    with duckdb.connect(":memory:") as con:
        part = CycleFiles(root, generation).append_part(
            con, EVENTS, f"SELECT {names} FROM range({lo}, {hi + 1})", lo, hi
        )
    return str(root / part.path)


def snapshot(root: Path, files: list[str], through: int) -> Snapshot:
    return Snapshot(
        files={"events": files},
        published_at=PUBLISHED,
        events_through=through,
        deliveries_through=0,
        fold_seq=0,
        metrics_as_of=None,
        watermark=PUBLISHED,
        location=str(root),
    )


def test_the_catalog_lives_beside_the_live_file(tmp_path: Path) -> None:
    db_path = tmp_path / "data" / "shoppulse.duckdb"
    assert catalog_path(db_path) == tmp_path / "data" / "analytics.duckdb"
    assert published_dir(db_path) == tmp_path / "data" / "analytics"
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "data", target_is_directory=True)
    (tmp_path / "data").mkdir()
    # Absolute and free of symlinks, whatever path reaches the catalog.
    assert files_location(catalog_path(link / "shoppulse.duckdb")) == str(
        (tmp_path / "data").resolve() / "analytics"
    )


def test_views_name_the_files_and_open_read_only_from_another_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = tmp_path / "data" / "analytics.duckdb"
    root = Path(files_location(catalog))
    files = [write_events(root, 1, 1, 3), write_events(root, 2, 4, 5)]
    write_catalog(catalog, snapshot(root, files, 5))

    # The view names exactly the files, by absolute path.
    [events_view] = [s for s in view_statements(snapshot(root, files, 5)) if " events AS " in s]
    assert all(f"'{f}'" in events_view for f in files)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    con = duckdb.connect(os.path.relpath(catalog, elsewhere), read_only=True)  # the stock way
    try:
        assert con.execute(
            "SELECT count(*), min(event_seq), max(event_seq) FROM events"
        ).fetchall() == [(5, 1, 5)]
        info = con.execute(
            "SELECT events_through, location, watermark FROM publish_info"
        ).fetchall()
        assert info == [(5, str(root), PUBLISHED)]
        assert con.execute("SELECT count(*) FROM orders").fetchall() == [(0,)]  # no files: empty
        with pytest.raises(duckdb.Error):
            con.execute("CREATE TABLE x (a INTEGER)")
    finally:
        con.close()
    # The catalog is read-only on disk and nothing temporary is left beside it.
    assert not catalog.stat().st_mode & stat.S_IWUSR
    assert sorted(p.name for p in catalog.parent.iterdir()) == ["analytics", "analytics.duckdb"]


def test_a_new_catalog_replaces_the_old_one_and_an_open_reader_keeps_its_snapshot(
    tmp_path: Path,
) -> None:
    catalog = tmp_path / "data" / "analytics.duckdb"
    root = Path(files_location(catalog))
    first = [write_events(root, 1, 1, 3)]
    write_catalog(catalog, snapshot(root, first, 3))
    reader = duckdb.connect(str(catalog), read_only=True)
    try:
        write_catalog(catalog, snapshot(root, [*first, write_events(root, 2, 4, 9)], 9))
        assert reader.execute("SELECT count(*) FROM events").fetchall() == [(3,)]
    finally:
        reader.close()
    fresh = duckdb.connect(str(catalog), read_only=True)
    try:
        assert fresh.execute("SELECT count(*) FROM events").fetchall() == [(9,)]
    finally:
        fresh.close()
