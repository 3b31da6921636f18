"""The live DuckDB file as the service uses it: every component's tables, migrated in one place.

Ingest's storage knows how to open the file; which components it holds is known here, where
ingest, reconciliation and metrics come together. Every process that opens the live file
read-write does it with `open_database`, so a file of any older version is brought up to date
once, component by component in the order of the data flow; the components themselves only check
that their tables are current (`ingest.storage.schema.check_schema`).
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from ingest.reconcile.runs import RECONCILIATION_SCHEMA
from ingest.storage.database import connect
from ingest.storage.schema import INGEST_SCHEMA, Schema
from metrics.schema import METRICS_SCHEMA

#: Every component's tables in the live file, in the order they are migrated.
LIVE_SCHEMAS: tuple[Schema, ...] = (INGEST_SCHEMA, RECONCILIATION_SCHEMA, METRICS_SCHEMA)


def open_database(
    path: Path, *, checkpoint_wal_mb: int = 64, memory_limit_mb: int | None = None
) -> duckdb.DuckDBPyConnection:
    """Open (creating if needed) the live database and bring every component's tables up to date.

    Raises StorageError when another process has the file open.
    """
    return connect(
        path, LIVE_SCHEMAS, checkpoint_wal_mb=checkpoint_wal_mb, memory_limit_mb=memory_limit_mb
    )
