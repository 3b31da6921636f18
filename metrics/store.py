"""Reads and writes of the metrics state tables (DuckDB <-> Polars)."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import numpy as np
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


def key_hashes(frame: pl.DataFrame, source: str = "source", key: str = "id") -> np.ndarray:
    """64-bit hashes of (source, key) pairs, the same for the same strings within a process."""
    if frame.is_empty():
        return np.empty(0, dtype=np.uint64)
    pairs = frame.select(pl.col(source).alias("source"), pl.col(key).alias("id"))
    hashed = pairs.select(pl.struct("source", "id").hash(seed=7))
    return np.asarray(hashed.to_series().to_numpy(), dtype=np.uint64)


class ColdIndex:
    """Which (source, key) pairs may have a row in a cold table: an exact superset.

    Sorted arrays of 64-bit hashes (8 bytes per cold row), searched by bisection; a few sorted
    runs are merged into one now and then. A hash collision only costs a needless read of the
    cold table, never a wrong answer: that read matches the real keys.
    """

    def __init__(self) -> None:
        self._runs: list[np.ndarray] = []

    def __len__(self) -> int:
        return int(sum(run.size for run in self._runs))

    def add(self, hashes: np.ndarray) -> None:
        if hashes.size:
            self._runs.append(np.unique(hashes))
        if len(self._runs) > 8:
            self._runs = [np.unique(np.concatenate(self._runs))]

    def may_contain(self, hashes: np.ndarray) -> np.ndarray:
        found = np.zeros(hashes.size, dtype=bool)
        for run in self._runs:
            positions = np.searchsorted(run, hashes).clip(max=run.size - 1)
            found |= run[positions] == hashes
        return found


class StateStore:
    """State and aggregate I/O on one connection (the caller owns the transaction)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self._cold: dict[tuple[str, str], ColdIndex] = {}

    def _query(self, sql: str, **frames: pl.DataFrame) -> pl.DataFrame:
        for name, frame in frames.items():
            self.con.register(name, frame)
        try:
            result: pl.DataFrame = self.con.sql(sql).pl()
            return result
        finally:
            for name in frames:
                self.con.unregister(name)

    # ------------------------------------------------------------------ the cold index

    def _index(self, spec: Kind, column: str) -> ColdIndex:
        """The cold index of `spec` on (source, column), built from the cold table once."""
        index = self._cold.get((spec.table, column))
        if index is None:
            index = ColdIndex()
            keys = self._query(f"SELECT source, {column} FROM {spec.table}_cold")
            index.add(key_hashes(keys, key=column))
            self._cold[(spec.table, column)] = index
        return index

    def _indexed_columns(self, spec: Kind) -> tuple[str, ...]:
        return ("id", "order_id") if "order_id" in spec.columns else ("id",)

    # ------------------------------------------------------------------ state rows

    def empty(self, spec: Kind) -> pl.DataFrame:
        """No state rows, with the columns `load` returns."""
        return (
            conform(pl.DataFrame(), spec)
            .with_columns(pl.lit(0, pl.Int64).alias("_rowid"), pl.lit(False).alias("_cold"))
            .clear()
        )

    def _load_from(self, spec: Kind, part: str, column: str, keys: pl.DataFrame) -> pl.DataFrame:
        found = self._query(
            f"SELECT t.rowid AS _rowid, t.* FROM {spec.table}_{part} t "
            f"SEMI JOIN wanted_keys k ON t.source = k.source AND t.{column} = k.id",
            wanted_keys=keys,
        )
        return conform(found, spec).with_columns(
            found["_rowid"].cast(pl.Int64), pl.lit(part == "cold").alias("_cold")
        )

    def load(self, spec: Kind, keys: pl.DataFrame, column: str = "id") -> pl.DataFrame:
        """State rows whose (source, `column`) is in `keys` (columns source, id), with `_rowid`
        and `_cold` (which table they live in)."""
        keys = keys.select(KEY).unique()
        if keys.is_empty():
            return self.empty(spec)
        hot = self._load_from(spec, "hot", column, keys)
        missing = keys if column != "id" else keys.join(hot.select(KEY), on=KEY, how="anti")
        candidates = missing.filter(
            pl.Series(self._index(spec, column).may_contain(key_hashes(missing)))
        )
        if candidates.is_empty():
            return hot
        return pl.concat([hot, self._load_from(spec, "cold", column, candidates)])

    def load_refunds(
        self, spec: Kind, refund_keys: pl.DataFrame, order_keys: pl.DataFrame
    ) -> pl.DataFrame:
        """Refunds by their own key and every refund of the given orders."""
        parts = [self.load(spec, refund_keys), self.load(spec, order_keys, column="order_id")]
        return pl.concat(parts).unique(subset=["_rowid", "_cold"], keep="first")

    def due_keys(self, spec: Kind, timeout: timedelta, now: datetime) -> pl.DataFrame:
        """Open carts or checkouts whose inactivity timeout has passed at `now`."""
        rows = self.con.execute(
            f"SELECT source, id FROM {spec.table}_hot WHERE fate = 'open' "
            "AND last_activity <= ?::TIMESTAMPTZ - ?::INTERVAL",
            [now, timeout],
        ).fetchall()
        return pl.DataFrame(rows, schema=_KEYS_SCHEMA, orient="row")

    def save(self, spec: Kind, rows: pl.DataFrame, old: pl.DataFrame, fold_seq: int) -> None:
        """Replace the `old` rows (as loaded) by `rows`, which all go to the hot table."""
        for part, cold in (("hot", False), ("cold", True)):
            replaced = old.filter(pl.col("_cold") == cold)["_rowid"]
            if replaced.is_empty():
                continue
            self.con.register("replaced_rowids", replaced.to_frame("rid"))
            self.con.execute(
                f"DELETE FROM {spec.table}_{part} WHERE rowid IN (SELECT rid FROM replaced_rowids)"
            )
            self.con.unregister("replaced_rowids")
        if rows.is_empty():
            return
        frame = conform(rows.with_columns(pl.lit(fold_seq, pl.Int64).alias("changed_seq")), spec)
        self.con.register("new_state_rows", frame)
        self.con.execute(f"INSERT INTO {spec.table}_hot SELECT * FROM new_state_rows")
        self.con.unregister("new_state_rows")

    def demote(self, spec: Kind, upto_seq: int) -> int:
        """Move rows unchanged since fold `upto_seq` (and not open) from hot to cold."""
        condition = f"changed_seq <= {int(upto_seq)}"
        if "fate" in spec.columns:
            condition += " AND fate IS DISTINCT FROM 'open'"
        moved = self._query(f"SELECT * FROM {spec.table}_hot WHERE {condition}")
        if moved.is_empty():
            return 0
        self.con.execute(
            f"INSERT INTO {spec.table}_cold SELECT * FROM {spec.table}_hot WHERE {condition}"
        )
        self.con.execute(f"DELETE FROM {spec.table}_hot WHERE {condition}")
        for column in self._indexed_columns(spec):
            self._index(spec, column).add(key_hashes(moved, key=column))
        return moved.height

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
