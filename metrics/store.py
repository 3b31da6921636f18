"""Reads and writes of the metrics state tables (DuckDB <-> Polars)."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import polars as pl

from metrics.fold import FUNNEL_KEY, FUNNEL_VALUES, KEY, SALES_KEY, SALES_VALUES, Kind
from metrics.schema import CURSOR, FUNNEL, FUNNEL_DELTAS, SALES, SALES_DELTAS

_KEYS_SCHEMA = {"source": pl.String, "id": pl.String}


def conform(frame: pl.DataFrame, spec: Kind) -> pl.DataFrame:
    """`frame` with exactly the state table's columns, order and types."""
    columns = []
    for name, dtype in spec.schema:
        if name in frame.columns:
            columns.append(pl.col(name).cast(dtype))
        else:
            columns.append(pl.lit(None, dtype).alias(name))
    return frame.select(columns)


class StateStore:
    """State and aggregate I/O on one connection (the caller owns the transaction)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def _query(self, sql: str, **frames: pl.DataFrame) -> pl.DataFrame:
        for name, frame in frames.items():
            self.con.register(name, frame)
        try:
            result: pl.DataFrame = self.con.sql(sql).pl()
            return result
        finally:
            for name in frames:
                self.con.unregister(name)

    def load(self, spec: Kind, keys: pl.DataFrame) -> pl.DataFrame:
        """State rows for `keys` (source, id), with their `_rowid`."""
        keys = keys.select(KEY).unique()
        if keys.is_empty():
            return (
                conform(pl.DataFrame(), spec)
                .with_columns(pl.lit(0, pl.Int64).alias("_rowid"))
                .clear()
            )
        found = self._query(
            f"SELECT t.rowid AS _rowid, t.* FROM {spec.table} t "
            "SEMI JOIN wanted_keys k ON t.source = k.source AND t.id = k.id",
            wanted_keys=keys,
        )
        return conform(found, spec).with_columns(found["_rowid"].cast(pl.Int64))

    def load_where(self, spec: Kind, where: str, **frames: pl.DataFrame) -> pl.DataFrame:
        found = self._query(
            f"SELECT t.rowid AS _rowid, t.* FROM {spec.table} t WHERE {where}", **frames
        )
        return conform(found, spec).with_columns(found["_rowid"].cast(pl.Int64))

    def due_keys(self, spec: Kind, timeout: timedelta, now: datetime) -> pl.DataFrame:
        """Open carts or checkouts whose inactivity timeout has passed at `now`."""
        rows = self.con.execute(
            f"SELECT source, id FROM {spec.table} WHERE fate = 'open' "
            "AND last_activity <= ?::TIMESTAMPTZ - ?::INTERVAL",
            [now, timeout],
        ).fetchall()
        return pl.DataFrame(rows, schema=_KEYS_SCHEMA, orient="row")

    def save(self, spec: Kind, rows: pl.DataFrame, replaced: pl.Series, fold_seq: int) -> None:
        """Replace the rows at `replaced` (rowids) by `rows`."""
        if not replaced.is_empty():
            self.con.register("replaced_rowids", replaced.to_frame("rid"))
            self.con.execute(
                f"DELETE FROM {spec.table} WHERE rowid IN (SELECT rid FROM replaced_rowids)"
            )
            self.con.unregister("replaced_rowids")
        if rows.is_empty():
            return
        frame = conform(rows.with_columns(pl.lit(fold_seq, pl.Int64).alias("changed_seq")), spec)
        self.con.register("new_state_rows", frame)
        self.con.execute(f"INSERT INTO {spec.table} SELECT * FROM new_state_rows")
        self.con.unregister("new_state_rows")

    def add_sales(self, change: pl.DataFrame, fold_seq: int) -> None:
        self._append(SALES_DELTAS, SALES_KEY, SALES_VALUES, change, fold_seq)

    def add_funnel(self, change: pl.DataFrame, fold_seq: int) -> None:
        self._append(FUNNEL_DELTAS, FUNNEL_KEY, FUNNEL_VALUES, change, fold_seq)

    def _append(
        self, table: str, key: list[str], values: list[str], change: pl.DataFrame, fold_seq: int
    ) -> None:
        if change.is_empty():
            return
        frame = change.select(*key, *values).with_columns(
            pl.lit(fold_seq, pl.Int64).alias("changed_seq")
        )
        self.con.register("aggregate_change", frame)
        self.con.execute(f"INSERT INTO {table} SELECT * FROM aggregate_change")
        self.con.unregister("aggregate_change")

    def compact(self) -> int:
        """Merge the change rows of every bucket that has several into one; return rows saved."""
        saved = 0
        for table, view, key in (
            (SALES_DELTAS, SALES, SALES_KEY),
            (FUNNEL_DELTAS, FUNNEL, FUNNEL_KEY),
        ):
            columns = ", ".join(key)
            matches = " AND ".join(f"t.{c} = m.{c}" for c in key)
            self.con.execute(
                f"CREATE OR REPLACE TEMP TABLE merged_buckets AS SELECT v.* FROM {view} v "
                f"SEMI JOIN (SELECT {columns} FROM {table} GROUP BY ALL HAVING count(*) > 1) d "
                f"USING ({columns})"
            )
            deleted = self.con.execute(
                f"DELETE FROM {table} t USING merged_buckets m WHERE {matches}"
            ).fetchall()[0][0]
            inserted = self.con.execute(
                f"INSERT INTO {table} SELECT * FROM merged_buckets"
            ).fetchall()[0][0]
            self.con.execute("DROP TABLE merged_buckets")
            saved += int(deleted) - int(inserted)
        return saved

    def cursor(self) -> tuple[int, int, datetime | None, datetime | None]:
        row = self.con.execute(
            f"SELECT event_seq, fold_seq, evaluated_at, watermark_received_at FROM {CURSOR}"
        ).fetchall()[0]
        assert row is not None, "metrics cursor row is missing"
        return int(row[0]), int(row[1]), row[2], row[3]

    def set_cursor(
        self, event_seq: int, fold_seq: int, evaluated_at: datetime, watermark: datetime | None
    ) -> None:
        self.con.execute(
            f"UPDATE {CURSOR} SET event_seq = ?, fold_seq = ?, evaluated_at = ?, "
            "watermark_received_at = ?, folded_at = now()",
            [event_seq, fold_seq, evaluated_at, watermark],
        )
