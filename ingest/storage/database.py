"""The live DuckDB file: opened once, by the service process only."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import duckdb

from ingest.storage.schema import Schema, migrate


class StorageError(Exception):
    """The database cannot be written right now (transient: the sender should retry)."""


def connect(
    path: Path,
    schemas: Sequence[Schema],
    *,
    checkpoint_wal_mb: int = 64,
    memory_limit_mb: int | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open (creating if needed) the live database and bring `schemas` up to date, in order.

    Which components the file holds is the composition's to say: `shoppulse.database`'s
    `open_database` passes every one of them. The returned connection is the process's root;
    give each thread its own `con.cursor()`.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(path))
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise StorageError(
                f"{path} is open in another process. Only the ShopPulse service opens the live "
                "database; analysts read the published copy (see docs/sql.md)."
            ) from None
        raise
    con.execute(f"SET checkpoint_threshold = '{int(checkpoint_wal_mb)}MB'")
    con.execute("SET TimeZone = 'UTC'")
    if memory_limit_mb is not None:
        con.execute(f"SET memory_limit = '{int(memory_limit_mb)}MB'")
    for schema in schemas:
        migrate(con, schema.component, schema.migrations)
    return con
