"""The live DuckDB file: opened once, by the service process only."""

from __future__ import annotations

from pathlib import Path

import duckdb

from ingest.storage.schema import INGEST_MIGRATIONS, migrate


class StorageError(Exception):
    """The database cannot be written right now (transient: the sender should retry)."""


def open_database(
    path: Path, *, checkpoint_wal_mb: int = 64, memory_limit_mb: int | None = None
) -> duckdb.DuckDBPyConnection:
    """Open (creating if needed) the live database and bring ingest's schema up to date.

    The returned connection is the process's root; give each thread its own `con.cursor()`.
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
    migrate(con, "ingest", INGEST_MIGRATIONS)
    return con
