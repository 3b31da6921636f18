"""Reads and writes of the metrics state tables (DuckDB <-> Polars)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

import duckdb
import numpy as np
import polars as pl

from metrics.fold import (
    ENGINE,
    KEY,
    KEY_HASH,
    Kind,
    key_hash,
)
from metrics.history import record_fold_sql
from metrics.schema import CURSOR, FUNNEL_DELTAS, SALES_DELTAS

log = logging.getLogger("shoppulse.metrics")

_HOT_ROWS = (pl.lit(None, pl.Int64).alias("_rowid"), pl.lit(False).alias("_cold"))
_COLD_ROWS = pl.lit(True).alias("_cold")
_CONFORM: dict[tuple[str, tuple[str, ...]], list[pl.Expr]] = {}


def conform(frame: pl.DataFrame | pl.LazyFrame, spec: Kind) -> pl.LazyFrame:
    """`frame` with exactly the state table's columns, order and types."""
    present = tuple(frame.collect_schema().names())
    columns = _CONFORM.get((spec.table, present))
    if columns is None:
        columns = [
            pl.col(name).cast(dtype) if name in present else pl.lit(None, dtype).alias(name)
            for name, dtype in spec.schema
        ]
        _CONFORM[(spec.table, present)] = columns
    return frame.lazy().select(columns)


def key_hashes(frame: pl.DataFrame, source: str = "source", key: str = "id") -> np.ndarray:
    """64-bit hashes of (source, key) pairs, the same for the same strings within a process
    (the frame's KEY_HASH column when it has one: computed with the query that made it)."""
    if frame.is_empty():
        return np.empty(0, dtype=np.uint64)
    if key == "id" and source == "source" and KEY_HASH in frame.columns:
        hashed = frame[KEY_HASH]
    else:
        hashed = frame.select(key_hash(source, key)).to_series()
    return np.asarray(hashed.to_numpy(), dtype=np.uint64)


@dataclass(frozen=True)
class Cursor:
    """How far the engine is: the aggregates reflect every event up to `event_seq` (fold
    `fold_seq`, evaluated at `evaluated_at`, newest arrival `watermark`); the state tables up to
    `state_event_seq` (fold `state_fold_seq`, evaluated at `state_evaluated_at`, newest arrival
    `state_watermark`), the rest of the state being in the engine's memory."""

    event_seq: int
    fold_seq: int
    evaluated_at: datetime | None
    watermark: datetime | None
    state_event_seq: int
    state_fold_seq: int
    state_evaluated_at: datetime | None
    state_watermark: datetime | None

    def state_written(self) -> Cursor:
        """This cursor once the state tables reflect everything it has folded."""
        return replace(
            self,
            state_event_seq=self.event_seq,
            state_fold_seq=self.fold_seq,
            state_evaluated_at=self.evaluated_at,
            state_watermark=self.watermark,
        )


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
        # Searched in sorted order: numpy's bisection starts each search where the previous one
        # ended, which touches far less of a large run (a third less time when it is not cached).
        order = np.argsort(hashes)
        wanted = hashes[order]
        found = np.zeros(hashes.size, dtype=bool)
        for run in self._runs:
            positions = np.searchsorted(run, wanted).clip(max=run.size - 1)
            found |= run[positions] == wanted
        result = np.empty(hashes.size, dtype=bool)
        result[order] = found
        return result


class HotMirror:
    """The rows of every hot table, in memory, as of the last committed fold of this store.

    The mirror is ahead of the hot tables: a fold changes it and records what it changed (the
    keys that leave the table, the rows that enter it); `StateStore.write_state` writes that to
    the tables, every few seconds, inside a fold's transaction. When a transaction does not
    commit, or the cursor's fold number is not the one the mirror was taken at, the mirror is
    dropped: it is read again from the tables and the events the tables do not reflect yet are
    folded into it again. This holds while the metrics engine is the only writer of the state
    tables, as the cold index already assumes.
    """

    def __init__(self, fold_seq: int, frames: dict[str, pl.DataFrame]) -> None:
        self.fold_seq = fold_seq
        self.frames = frames
        # Per table: keys whose row on disk is replaced, and the rows to write in their place.
        self.pending_deletes: dict[str, list[pl.DataFrame]] = {}
        self.pending_writes: dict[str, list[pl.DataFrame]] = {}
        self.pending_rows = 0
        self.pending_since: float | None = None  # time.monotonic() of the first pending change
        # Per (table, column): a superset of the (source, column) pairs of the table's rows,
        # to skip the joins when no wanted key can be there (the common case: new entities).
        self._pairs: dict[tuple[str, str], set[tuple[str, str]]] = {}

    def may_hold(self, table: str, column: str, wanted: pl.DataFrame) -> bool:
        """Whether a row of `table` may have its (source, `column`) among `wanted`'s keys."""
        pairs = self._pairs.get((table, column))
        if pairs is None:
            pairs = self._pairs[(table, column)] = set(_pairs(self.frames[table], column))
        return not pairs.isdisjoint(_pairs(wanted, "id"))

    def replace(self, table: str, frame: pl.DataFrame, added: pl.DataFrame | None) -> None:
        """`frame` is the table's new content, which holds the `added` rows (None: unknown)."""
        self.frames[table] = frame
        for (name, column), pairs in list(self._pairs.items()):
            if name != table:
                continue
            if added is None:
                del self._pairs[(name, column)]
            else:
                pairs.update(_pairs(added, column))

    def record(
        self, table: str, deleted: pl.DataFrame | None, written: pl.DataFrame | None
    ) -> None:
        """Rows of `table` changed in memory: the `deleted` keys leave the table and the
        `written` rows (whole rows) enter it, at the next `write_state`."""
        if deleted is not None and not deleted.is_empty():
            self.pending_deletes.setdefault(table, []).append(deleted)
        if written is not None and not written.is_empty():
            self.pending_writes.setdefault(table, []).append(written)
            self.pending_rows += written.height
            if self.pending_since is None:
                self.pending_since = time.monotonic()

    def take_pending(self) -> tuple[dict[str, pl.DataFrame], dict[str, pl.DataFrame]]:
        """Per table, the keys to delete and the rows to write (the latest row of each key),
        forgetting them."""
        deletes = {t: pl.concat(f).unique() for t, f in self.pending_deletes.items()}
        writes = {
            t: f[0] if len(f) == 1 else pl.concat(f).unique(subset=KEY, keep="last")
            for t, f in self.pending_writes.items()
        }
        self.pending_deletes, self.pending_writes = {}, {}
        self.pending_rows, self.pending_since = 0, None
        return deletes, writes


def _without_unchanged(
    spec: Kind, rows: pl.DataFrame, old: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """`rows` and `old` without the keys whose new row equals the old one in every state column
    (a refund re-evaluated with its order, say, that still counts the same)."""
    values = [name for name in spec.columns if name not in KEY and name != "changed_seq"]
    before = conform(old, spec).select(
        *KEY, *(pl.col(name).alias(f"{name}:old") for name in values)
    )
    unchanged = (
        conform(rows, spec)
        .join(before, on=KEY, how="inner")
        .filter(
            pl.all_horizontal(pl.col(name).eq_missing(pl.col(f"{name}:old")) for name in values)
        )
        .select(KEY)
    )
    kept_rows, kept_old = pl.collect_all(
        [
            rows.lazy().join(unchanged, on=KEY, how="anti"),
            old.lazy().join(unchanged, on=KEY, how="anti"),
        ],
        engine=ENGINE,
    )
    return kept_rows, kept_old


def _pairs(frame: pl.DataFrame, column: str) -> zip[tuple[str, str]]:
    return zip(frame["source"].to_list(), frame[column].to_list(), strict=True)


class StateStore:
    """State and aggregate I/O on one connection (the caller owns the transaction)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self._cold: dict[tuple[str, str], ColdIndex] = {}
        self._mirror: HotMirror | None = None
        self._empty: dict[str, pl.DataFrame] = {}
        self._cold_deleted = False
        # The cursor as last committed (the engine is its only writer), and as set by the
        # transaction in progress.
        self._cursor: Cursor | None = None
        self._new_cursor: Cursor | None = None

    def _query(self, sql: str, **frames: pl.DataFrame) -> pl.DataFrame:
        for name, frame in frames.items():
            self.con.register(name, frame)
        try:
            result: pl.DataFrame = self.con.sql(sql).pl()
            return result
        finally:
            for name in frames:
                self.con.unregister(name)

    def _insert(self, table: str, frame: pl.DataFrame) -> None:
        """Append `frame` (the table's columns, in order) to `table`."""
        # DuckDB reads the Arrow table by its local name in the statement (a replacement scan):
        # much cheaper than registering a polars frame as a view and unregistering it.
        arrow_rows = frame.to_arrow()  # noqa: F841
        self.con.execute(f"INSERT INTO {table} SELECT * FROM arrow_rows")

    def _delete_keys(self, table: str, keys: pl.DataFrame) -> None:
        """Delete the rows of `table` whose (source, id) is in `keys`."""
        arrow_keys = keys.to_arrow()  # noqa: F841
        self.con.execute(
            f"DELETE FROM {table} t USING arrow_keys k WHERE t.source = k.source AND t.id = k.id"
        )

    # ------------------------------------------------------------------ the hot mirror

    def mirror_current(self, fold_seq: int) -> bool:
        """Whether the mirror holds the state as of committed fold `fold_seq`."""
        return self._mirror is not None and self._mirror.fold_seq == fold_seq

    def open_mirror(self, specs: Iterable[Kind], fold_seq: int) -> None:
        """Read the hot tables into a new mirror, to be brought to cursor fold `fold_seq` (the
        caller folds again what the tables do not reflect yet)."""
        self._cold_deleted = False
        frames = {
            spec.table: conform(self._query(f"SELECT * FROM {spec.table}_hot"), spec).collect(
                engine=ENGINE
            )
            for spec in specs
        }
        self._mirror = HotMirror(fold_seq, frames)

    def committed(self) -> None:
        """The transaction that changed the mirror and set the cursor committed."""
        self._cursor = self._new_cursor or self._cursor
        self._new_cursor = None
        if self._mirror is not None and self._cursor is not None:
            self._mirror.fold_seq = self._cursor.fold_seq

    def drop_mirror(self) -> None:
        """The transaction did not commit: read the cursor and the hot tables again (and fold
        again what they miss) before the next use."""
        self._mirror = None
        self._cold_deleted = False
        self._cursor = self._new_cursor = None

    def hot(self, spec: Kind) -> pl.DataFrame:
        """Every row of the hot table of `spec` (the mirror must be open)."""
        assert self._mirror is not None, "the hot mirror is not open"
        return self._mirror.frames[spec.table]

    def _set_hot(self, spec: Kind, frame: pl.DataFrame, added: pl.DataFrame | None) -> None:
        assert self._mirror is not None, "the hot mirror is not open"
        self._mirror.replace(spec.table, frame, added)

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
        frame = self._empty.get(spec.table)
        if frame is None:
            frame = (
                conform(pl.DataFrame(), spec)
                .with_columns(*_HOT_ROWS)
                .collect(engine=ENGINE)
                .clear()
            )
            self._empty[spec.table] = frame
        return frame

    def _load_cold(self, spec: Kind, column: str, keys: pl.DataFrame) -> pl.DataFrame:
        found = self._query(
            f"SELECT t.rowid AS _rowid, t.* FROM {spec.table}_cold t "
            f"SEMI JOIN wanted_keys k ON t.source = k.source AND t.{column} = k.id",
            wanted_keys=keys,
        )
        rowids = found["_rowid"].cast(pl.Int64)
        return conform(found, spec).with_columns(rowids, _COLD_ROWS).collect(engine=ENGINE)

    def load(self, spec: Kind, keys: pl.DataFrame, column: str = "id") -> pl.DataFrame:
        """State rows whose (source, `column`) is in `keys` (columns source, id), with `_rowid`
        (cold rows only) and `_cold` (which table they live in). Repeated keys are harmless."""
        assert self._mirror is not None, "the hot mirror is not open"
        hot_rows, missing = self.empty(spec), keys
        if self._mirror.may_hold(spec.table, column, keys):
            wanted = keys.lazy().select(*KEY, *([KEY_HASH] if KEY_HASH in keys.columns else []))
            hot = (
                self.hot(spec)
                .lazy()
                .join(wanted, left_on=["source", column], right_on=KEY, how="semi")
                .with_columns(*_HOT_ROWS)
            )
            # Keys found in the hot table have no row in the cold one.
            if column == "id":
                wanted = wanted.join(hot.select(KEY), on=KEY, how="anti")
            hot_rows, missing = pl.collect_all([hot, wanted], engine=ENGINE)
        index = self._index(spec, column)
        if missing.is_empty() or not len(index):
            return hot_rows
        maybe = index.may_contain(key_hashes(missing))
        if not maybe.any():
            return hot_rows
        candidates = missing.filter(pl.Series(maybe))
        return pl.concat([hot_rows, self._load_cold(spec, column, candidates)])

    def load_refunds(
        self, spec: Kind, refund_keys: pl.DataFrame, order_keys: pl.DataFrame
    ) -> pl.DataFrame:
        """Refunds by their own key and every refund of the given orders."""
        by_key = self.load(spec, refund_keys)
        by_order = self.load(spec, order_keys, column="order_id")
        if by_key.is_empty() or by_order.is_empty():
            return by_order if by_key.is_empty() else by_key
        # A state row's key is in one table only, once.
        return pl.concat([by_key, by_order]).unique(subset=KEY, keep="first")

    def save(self, spec: Kind, rows: pl.DataFrame, old: pl.DataFrame, fold_seq: int) -> None:
        """Replace the `old` rows (as loaded) by `rows`, which all go to the hot table. A row
        equal to its old version stays where it is: nothing to write, nothing to republish.

        Hot rows change in the mirror only, until `write_state`. A cold row is deleted from its
        table at once (by its row id, which is only valid in this transaction), so a fold that
        replaces cold rows must write the state before it commits: see `must_write`."""
        if not old.is_empty() and not rows.is_empty():
            rows, old = _without_unchanged(spec, rows, old)
        hot, added, replaced = self.hot(spec), None, None
        if not old.is_empty():
            cold_rowids = old.filter(pl.col("_cold"))["_rowid"].to_list()
            if cold_rowids:
                listed = ", ".join(str(int(rowid)) for rowid in cold_rowids)
                self.con.execute(f"DELETE FROM {spec.table}_cold WHERE rowid IN ({listed})")
                self._cold_deleted = True
            replaced = old.lazy().filter(~pl.col("_cold")).select(KEY).collect(engine=ENGINE)
            if not replaced.is_empty():
                hot = hot.join(replaced, on=KEY, how="anti")
        if not rows.is_empty():
            changed = pl.lit(fold_seq).cast(pl.Int64).alias("changed_seq")
            added = conform(rows.lazy().with_columns(changed), spec).collect(engine=ENGINE)
            hot = pl.concat([hot, added])
        self._set_hot(spec, hot, added)
        assert self._mirror is not None
        self._mirror.record(spec.table, replaced, added)

    @property
    def must_write(self) -> bool:
        """This transaction deleted cold rows: the state must be written before it commits."""
        return self._cold_deleted

    @property
    def pending_rows(self) -> int:
        """State rows changed in memory and not written to the tables yet."""
        return self._mirror.pending_rows if self._mirror is not None else 0

    @property
    def pending_since(self) -> float | None:
        """`time.monotonic()` of the oldest change not written yet (None: nothing pending)."""
        return self._mirror.pending_since if self._mirror is not None else None

    def write_state(self, specs: Iterable[Kind]) -> int:
        """Write every state change kept in memory to the hot tables; return the rows written."""
        assert self._mirror is not None, "the hot mirror is not open"
        deletes, writes = self._mirror.take_pending()
        written = 0
        for spec in specs:
            table = f"{spec.table}_hot"
            replaced = deletes.get(spec.table)
            if replaced is not None and not replaced.is_empty():
                self._delete_keys(table, replaced)
            rows = writes.get(spec.table)
            if rows is not None and not rows.is_empty():
                self._insert(table, rows)
                written += rows.height
        self._cold_deleted = False
        return written

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
        if self._mirror is not None:
            self._demote_mirror(spec, upto_seq, moved.height)
        return moved.height

    def _demote_mirror(self, spec: Kind, upto_seq: int, moved: int) -> None:
        stays = pl.col("changed_seq") > upto_seq
        if "fate" in spec.columns:
            stays = stays | pl.col("fate").eq_missing("open")
        hot = self.hot(spec)
        kept = hot.filter(stays)
        if hot.height - kept.height != moved:
            log.warning(
                "the hot mirror of %s disagreed with its table; reading it again", spec.table
            )
            self.drop_mirror()
            return
        self._set_hot(spec, kept, None)

    def cursor(self) -> Cursor:
        if self._cursor is not None:
            return self._cursor
        row = self.con.execute(
            f"SELECT event_seq, fold_seq, evaluated_at, watermark_received_at, state_event_seq, "
            f"state_fold_seq, state_evaluated_at, state_watermark_received_at FROM {CURSOR}"
        ).fetchall()[0]
        assert row is not None, "metrics cursor row is missing"
        self._cursor = Cursor(
            int(row[0]), int(row[1]), row[2], row[3], int(row[4]), int(row[5]), row[6], row[7]
        )
        return self._cursor

    def set_cursor(
        self,
        cursor: Cursor,
        sales: pl.DataFrame | None = None,
        funnel: pl.DataFrame | None = None,
        *,
        record_fold: bool = False,
    ) -> None:
        """Write `cursor` in the transaction in progress (see `committed`), after appending the
        aggregate changes `sales` and `funnel` (rows with the change logs' columns) and, with
        `record_fold`, dating the cursor's fold in the history: one call for all of it, which
        saves a round trip per statement."""
        self._new_cursor = cursor
        statements = []
        # DuckDB reads these Arrow tables by their local names in the script (replacement scans).
        sales_rows = sales.to_arrow() if sales is not None and not sales.is_empty() else None
        funnel_rows = funnel.to_arrow() if funnel is not None and not funnel.is_empty() else None
        if sales_rows is not None:
            statements.append(f"INSERT INTO {SALES_DELTAS} SELECT * FROM sales_rows")
        if funnel_rows is not None:
            statements.append(f"INSERT INTO {FUNNEL_DELTAS} SELECT * FROM funnel_rows")
        if record_fold:
            statements.append(
                record_fold_sql(
                    cursor.fold_seq,
                    _time(cursor.evaluated_at),
                    _time(cursor.watermark),
                    cursor.event_seq,
                )
            )
        statements.append(
            f"UPDATE {CURSOR} SET event_seq = {int(cursor.event_seq)}, "
            f"fold_seq = {int(cursor.fold_seq)}, evaluated_at = {_time(cursor.evaluated_at)}, "
            f"watermark_received_at = {_time(cursor.watermark)}, "
            f"state_event_seq = {int(cursor.state_event_seq)}, "
            f"state_fold_seq = {int(cursor.state_fold_seq)}, "
            f"state_evaluated_at = {_time(cursor.state_evaluated_at)}, "
            f"state_watermark_received_at = {_time(cursor.state_watermark)}, folded_at = now()"
        )
        self.con.execute("; ".join(statements))


def _time(moment: datetime | None) -> str:
    """A TIMESTAMPTZ literal (NULL for None)."""
    return "NULL" if moment is None else f"'{moment.isoformat()}'::TIMESTAMPTZ"
