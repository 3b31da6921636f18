"""Columns the publisher reads from the stored canonical events of entity versions: orders'
display names and line items, checkouts' currency and value.

The metrics engine's state keeps only what the metrics need; these columns come from the event
of each entity's version (`version_seq`), which ingest stored with the delivery (so they outlive
raw-body purges and redaction).
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from ingest.storage.schema import EVENT_LINES, EVENTS
from shoppulse.publish.datasets import LINE_FIELDS, Column

#: Per entity kind: the expression of each column, over the version's event `e` and its lines
#: aggregated as `l.lines`.
_EXPRESSIONS = {
    "order": {"name": "e.name", "lines": "l.lines"},
    "checkout": {"currency": "e.currency", "value": "e.gross_sales"},
}


class EventColumns:
    """Reads the columns of entity versions from the `events` and `event_lines` tables."""

    def __init__(self, live: duckdb.DuckDBPyConnection) -> None:
        self.live = live
        self._present: set[str] | None = None

    def read(self, kind: str, extra: list[Column], event_seqs: list[int]) -> pa.Table:
        """(event_seq, `extra` columns) of these versions of entities of `kind`."""
        columns = [f"CAST({self._expression(kind, c.name)} AS {c.type}) AS {c.name}" for c in extra]
        wanted = sorted(set(event_seqs))
        if not wanted:
            empty = "".join(f", NULL::{c.type} AS {c.name}" for c in extra)
            return self.live.sql(
                f"SELECT NULL::BIGINT AS event_seq{empty} WHERE false"
            ).to_arrow_table()
        lo, hi = wanted[0], wanted[-1]
        seqs = pa.table({"seq": pa.array(wanted, pa.int64())})
        within = f"event_seq BETWEEN {lo} AND {hi} AND event_seq IN (SELECT seq FROM _pub_seqs)"
        lines = "(SELECT NULL::BIGINT AS event_seq, NULL AS lines WHERE false)"
        if EVENT_LINES in self._tables():
            fields = ", ".join(f"{name} := {name}" for name, _ in LINE_FIELDS)
            lines = (
                f"(SELECT event_seq, list(struct_pack({fields}) ORDER BY line) AS lines "
                f"FROM {EVENT_LINES} WHERE {within} GROUP BY event_seq)"
            )
        self.live.register("_pub_seqs", seqs)
        try:
            return self.live.sql(
                f"SELECT e.event_seq, {', '.join(columns)} FROM {EVENTS} e "
                f"LEFT JOIN {lines} l USING (event_seq) WHERE {within}"
            ).to_arrow_table()
        finally:
            self.live.unregister("_pub_seqs")

    def _expression(self, kind: str, name: str) -> str:
        expression = _EXPRESSIONS[kind][name]
        if expression == "e.name" and "events.name" not in self._tables():
            return "NULL"  # a live file of an older version, published while stopped
        return expression

    def _tables(self) -> set[str]:
        """The live file's tables and `events`' columns (read once: the schema of an open file
        does not change under the publisher; an older file read while stopped is not migrated)."""
        if self._present is None:
            rows = self.live.execute(
                "SELECT table_name, column_name FROM duckdb_columns() "
                "WHERE database_name = current_database() AND table_name IN (?, ?)",
                [EVENTS, EVENT_LINES],
            ).fetchall()
            self._present = {str(r[0]) for r in rows} | {f"{r[0]}.{r[1]}" for r in rows}
        return self._present
