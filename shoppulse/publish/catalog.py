"""The SQL catalog, `<db dir>/analytics.duckdb`: where it and its Parquet files live, what one
catalog shows (`Snapshot`), and writing it in one atomic step.

The catalog holds nothing but the analyst views (`shoppulse.publish.views`) over the exact
published files, and `publish_info`, how far the snapshot reaches. Analysts open it read-only
(`shoppulse.sql.open_catalog`, or any DuckDB client).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

from shoppulse.publish.datasets import DATASETS, quote
from shoppulse.publish.durable import fsync_dir, fsync_file
from shoppulse.publish.views import VIEWS

CATALOG_NAME = "analytics.duckdb"
PUBLISHED_DIR = "analytics"


def catalog_path(db_path: Path) -> Path:
    """The analysts' catalog for the live database at `db_path`: `<db dir>/analytics.duckdb`."""
    return db_path.parent / CATALOG_NAME


def published_dir(db_path: Path) -> Path:
    """Where the published Parquet files live: `<db dir>/analytics/`."""
    return db_path.parent / PUBLISHED_DIR


def files_location(catalog: Path) -> str:
    """The absolute, symlink-free directory of the Parquet files of `catalog`.

    The views name their files by absolute paths, so that any client opens the catalog from any
    working directory. The catalog records the directory it was written for (`publish_info.
    location`); a catalog whose folder was moved or copied since is re-pointed at open (see
    `shoppulse.sql.open_catalog`) and rewritten by the next publish.
    """
    return str(catalog.parent.resolve() / PUBLISHED_DIR)


@dataclass(frozen=True)
class Snapshot:
    """What one published catalog shows: its files and how far it reaches."""

    files: Mapping[str, Sequence[str]]
    published_at: datetime
    events_through: int
    deliveries_through: int
    fold_seq: int
    metrics_as_of: datetime | None
    watermark: datetime | None
    location: str = ""  # the absolute directory of `files` (see `files_location`)


def _literal(value: datetime | None) -> str:
    return "NULL::TIMESTAMPTZ" if value is None else f"{quote(value.isoformat())}::TIMESTAMPTZ"


def view_statements(snapshot: Snapshot) -> list[str]:
    """CREATE VIEW statements of every analyst view over `snapshot`'s files."""
    sources = {
        name: dataset.source_sql(snapshot.files.get(name, ())) for name, dataset in DATASETS.items()
    }
    statements = [
        f"CREATE OR REPLACE VIEW {name} AS {template.format(**sources)}"
        for name, template in VIEWS.items()
    ]
    statements.append(
        "CREATE OR REPLACE VIEW publish_info AS SELECT "
        f"{_literal(snapshot.published_at)} AS published_at, "
        f"CAST({int(snapshot.events_through)} AS BIGINT) AS events_through, "
        f"CAST({int(snapshot.deliveries_through)} AS BIGINT) AS deliveries_through, "
        f"CAST({int(snapshot.fold_seq)} AS BIGINT) AS fold_seq, "
        f"{_literal(snapshot.metrics_as_of)} AS metrics_as_of, "
        f"{_literal(snapshot.watermark)} AS watermark, "
        f"{quote(snapshot.location)} AS location"
    )
    return statements


def write_catalog(path: Path, snapshot: Snapshot) -> None:
    """Write a new catalog beside `path` and rename it over `path` in one step.

    Readers that have the old catalog open keep it (and the files it names, until the grace
    period ends); new readers get the new one. Nobody ever opens the catalog read-write, so the
    rename never waits for or breaks a reader.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        con = duckdb.connect(str(temporary))
        try:
            con.execute("BEGIN TRANSACTION")
            for statement in view_statements(snapshot):
                con.execute(statement)
            con.execute("COMMIT")
        finally:
            con.close()
        fsync_file(temporary)
        os.chmod(temporary, 0o444)
        os.replace(temporary, path)
        fsync_dir(path.parent)
    finally:
        temporary.unlink(missing_ok=True)
        Path(f"{temporary}.wal").unlink(missing_ok=True)
