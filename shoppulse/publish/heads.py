"""How far the live file is: the heads a publish cycle publishes up to.

A cycle reads them first, inside its read transaction, so that everything it writes agrees with
one snapshot: the last stored event and delivery, the last fold whose entity state the metrics
engine has written (`state_fold_seq`; the engine keeps recent state in memory for a few seconds,
so the aggregates may be further on), and a fingerprint of the ingest counters (they are updated
in place, so no sequence number says that they changed).

The live file may lack tables (a file of an older version, or a component that never ran): what
is missing counts as not moved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb

from ingest.storage import schema as ingest_tables
from metrics import schema as metrics_tables


@dataclass(frozen=True)
class Positions:
    """How far a publish is along each source: what the manifest records after every cycle, and
    what tells whether anything moved since."""

    event_seq: int
    delivery_seq: int
    fold_seq: int
    counts: str


@dataclass(frozen=True)
class Heads(Positions):
    """The live file's heads as one cycle read them, and the time the published state is of."""

    evaluated_at: datetime | None
    watermark: datetime | None

    @property
    def positions(self) -> Positions:
        """The heads without the times: those are recorded only with a new catalog, so they do
        not tell whether the watermarks moved."""
        return Positions(self.event_seq, self.delivery_seq, self.fold_seq, self.counts)


def live_tables(live: duckdb.DuckDBPyConnection) -> set[str]:
    """The tables and views of the live file (`live`'s current database)."""
    rows = live.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
        "UNION ALL SELECT view_name FROM duckdb_views() "
        "WHERE database_name = current_database() AND NOT internal"
    ).fetchall()
    return {str(r[0]) for r in rows}


def read_heads(live: duckdb.DuckDBPyConnection, present: set[str], since: Positions) -> Heads:
    """The heads of the live file, whose tables and views are `present`, for a publisher that
    has published up to `since`.

    Only the sequence numbers after `since` are searched (a range scan of the newest rows, not a
    scan of the history); a table with nothing newer keeps the position of `since`.
    """
    event_seq = _newest(live, present, ingest_tables.EVENTS, "event_seq", since.event_seq)
    delivery_seq = _newest(
        live, present, ingest_tables.DELIVERIES, "delivery_seq", since.delivery_seq
    )
    fold_seq, evaluated_at, watermark = _state_cursor(live, present)
    counts = ""
    if ingest_tables.INGEST_COUNTS in present:
        counts = repr(
            live.execute(
                f"SELECT count(*), sum(count), max(last_at) FROM {ingest_tables.INGEST_COUNTS}"
            ).fetchall()
        )
    return Heads(event_seq, delivery_seq, fold_seq, counts, evaluated_at, watermark)


def _newest(
    live: duckdb.DuckDBPyConnection, present: set[str], table: str, seq: str, last: int
) -> int:
    """The largest `seq` of `table` after `last`, or `last` when there is none."""
    if table not in present:
        return last
    rows = live.execute(f"SELECT max({seq}) FROM {table} WHERE {seq} > ?", [last]).fetchall()
    found = rows[0][0] if rows else None
    return int(found) if found is not None else last


def _state_cursor(
    live: duckdb.DuckDBPyConnection, present: set[str]
) -> tuple[int, datetime | None, datetime | None]:
    """(fold, evaluated at, watermark) of the entity state the engine has written."""
    cursor = metrics_tables.CURSOR
    if cursor not in present:
        return 0, None, None
    # The state tables reflect the folds up to state_fold_seq (the engine writes them every few
    # seconds); a file from before that column: every fold.
    columns = {
        str(r[0])
        for r in live.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = ? "
            "AND database_name = current_database()",
            [cursor],
        ).fetchall()
    }
    heads = (
        "state_fold_seq, state_evaluated_at, state_watermark_received_at"
        if "state_fold_seq" in columns
        else "fold_seq, evaluated_at, watermark_received_at"
    )
    row = live.execute(f"SELECT {heads} FROM {cursor}").fetchall()
    if not row:
        return 0, None, None
    return int(row[0][0]), row[0][1], row[0][2]
