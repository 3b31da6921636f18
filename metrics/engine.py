"""The incremental metrics engine: folds new events into state and aggregates, exactly once.

One fold is one transaction: read the events after the durable cursor, load the state rows they
touch (plus carts and checkouts whose abandonment timeout has passed), compute new state with the
pure functions of `metrics.fold`, apply the change of every aggregate bucket (new contribution
minus old), and move the cursor. A crash anywhere rolls the whole fold back.

State changes are kept in memory and written to the state tables every `state_write_seconds`
(inside a fold's transaction, with the cursor's `state_event_seq`), at every stop, and at once
by a fold that replaces cold rows. Writing four tables costs more than the rest of a fold's
writes; once every few seconds it is a small share. The state on disk plus the events after
`state_event_seq` always give the state in memory: after a crash, or a fold that did not commit,
the engine reads the tables and folds those events again into state only (the aggregates already
count them), at the time of the last fold. Folding is path-independent: versions merge by
business order, flags are sticky, counters add up, and a cart's or checkout's fate at a time is
the same whether it was evaluated once or at every fold before it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import duckdb
import polars as pl

from ingest.storage.schema import EVENTS, INGEST_SCHEMA, check_schema
from metrics import causes as C
from metrics import fold as F
from metrics import history
from metrics.history import History
from metrics.schema import METRICS_SCHEMA
from metrics.store import Cursor, StateStore

log = logging.getLogger("shoppulse.metrics")

_EVENT_COLUMNS = (
    "event_seq, source, received_at, kind, entity_id, created_at, updated_at, cart_token, "
    "checkout_token, order_id, currency, gross_sales, discounts, refund_amount, test, "
    "cancelled, deleted, abandoned, completed, action = 'restore' AS restored, origin"
)

_EVENT_TYPES = {
    "received_at": F.TS,
    "created_at": F.TS,
    "updated_at": F.TS,
    "gross_sales": F.MONEY,
    "discounts": F.MONEY,
    "refund_amount": F.MONEY,
}


AggregateChanges = tuple[pl.DataFrame, pl.DataFrame] | tuple[()]
"""The change of every sales and funnel bucket a fold touched (none: folded into state only)."""


@dataclass(frozen=True)
class FoldReport:
    events: int
    cursor: int
    evaluated_at: datetime
    state_rows_written: int = 0


_SPECS = (F.ORDER, F.REFUND, F.CHECKOUT, F.CART)


def _keys(*frames: pl.DataFrame) -> pl.DataFrame:
    """The (source, id) pairs of these frames (not unique), with their KEY_HASH."""
    keys = pl.concat([f.lazy().select(F.KEY) for f in frames])
    return keys.with_columns(F.key_hash().alias(F.KEY_HASH)).collect(engine=F.ENGINE)


def _all_empty(*frames: pl.DataFrame) -> bool:
    return all(f.is_empty() for f in frames)


Change = tuple[pl.DataFrame, pl.DataFrame]
"""The rows of one entity kind a fold replaced (as loaded) and their new versions."""


def _aggregate_changes(
    fold_seq: int, batch: F.Batch, orders: Change, refunds: Change, carts: Change, checkouts: Change
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The change of every sales and funnel bucket, per cause: (sales, funnel)."""
    changed = pl.lit(fold_seq, pl.Int64).alias("changed_seq")
    order_causes = C.order_causes(*orders, C.origins(batch.orders))
    refund_causes = C.refund_causes(
        refunds[1], batch.refunds, order_causes, C.origins(batch.refunds)
    )
    cart_causes = C.fate_causes(*carts, C.origins(batch.carts))
    checkout_causes = C.fate_causes(*checkouts, C.origins(batch.checkouts))
    sales, funnel = pl.collect_all(
        [
            F.net_change(
                F.sales_contributions(orders[1], refunds[1], 1, order_causes, refund_causes),
                F.sales_contributions(orders[0], refunds[0], -1, order_causes, refund_causes),
                F.SALES_KEY,
                F.SALES_VALUES,
                changed,
            ),
            F.net_change(
                F.funnel_contributions(carts[1], checkouts[1], 1, cart_causes, checkout_causes),
                F.funnel_contributions(carts[0], checkouts[0], -1, cart_causes, checkout_causes),
                F.FUNNEL_KEY,
                F.FUNNEL_VALUES,
                changed,
            ),
        ],
        engine=F.ENGINE,
    )
    return sales, funnel


class MetricsEngine:
    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        *,
        cart_abandon_after: timedelta = timedelta(minutes=60),
        checkout_abandon_after: timedelta = timedelta(minutes=10),
        batch_max: int = 20_000,
        state_write_seconds: float = 0.0,
        state_write_rows: int = 200_000,
        history: History = History(),
    ) -> None:
        self.con = con.cursor()
        # A cursor is a new connection with the default settings: in UTC, DuckDB's timestamps
        # arrive in Polars with the fold's own type (no cast).
        self.con.execute("SET TimeZone = 'UTC'")
        check_schema(self.con, INGEST_SCHEMA, METRICS_SCHEMA)  # open_database migrates
        self.store = StateStore(self.con)
        self.cart_abandon_after = cart_abandon_after
        self.checkout_abandon_after = checkout_abandon_after
        self.batch_max = batch_max
        self.state_write_seconds = state_write_seconds
        self.state_write_rows = state_write_rows
        self.history = history
        self._demoted_upto: int | None = None

    # ------------------------------------------------------------------ public

    def fold(self, now: datetime) -> FoldReport:
        """Fold at most `batch_max` new events and advance timers to `now`, in one transaction."""
        with self._transaction():
            cursor = self.store.cursor()
            fold_seq = cursor.fold_seq + 1
            self._catch_up(cursor, fold_seq)
            if cursor.evaluated_at is not None and cursor.evaluated_at > now:
                now = cursor.evaluated_at  # time never runs backwards for the state
            events = self._new_events(cursor.event_seq)
            changes = self._apply(events, now, fold_seq)
            event_seq, watermark = cursor.event_seq, cursor.watermark
            if not events.is_empty():
                event_seq = int(events["event_seq"].max())  # type: ignore[arg-type]
                newest = events["received_at"].max()
                if watermark is None or (newest is not None and newest > watermark):  # type: ignore[operator]
                    watermark = newest  # type: ignore[assignment]
            written = self.store.write_state(_SPECS) if self._state_due() else 0
            folded = replace(
                cursor,
                event_seq=event_seq,
                fold_seq=fold_seq,
                evaluated_at=now,
                watermark=watermark,
            )
            if self.store.pending_rows == 0:  # the tables hold every change folded so far
                folded = folded.state_written()
            self.store.set_cursor(folded, *changes, record_fold=True)
        return FoldReport(len(events), event_seq, now, written)

    def write_state(self) -> int:
        """Write the state changes kept in memory to the state tables now (at a stop, say);
        return the rows written."""
        with self._transaction():
            written, _ = self._write_all_state()
        return written

    def _write_all_state(self) -> tuple[int, Cursor]:
        """In the transaction in progress: bring the mirror to the cursor, write every state
        change it holds and record that in the cursor; return the rows written and the cursor."""
        cursor = self.store.cursor()
        self._catch_up(cursor, cursor.fold_seq)
        written = self.store.write_state(_SPECS)
        self.store.set_cursor(cursor.state_written())
        return written, cursor

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One transaction of the engine: on failure the mirror and the cached cursor are
        dropped (read and caught up again next time); on commit the store learns the cursor."""
        self.con.execute("BEGIN")
        try:
            yield
            self.con.execute("COMMIT")
        except BaseException:
            self.store.drop_mirror()
            self.con.execute("ROLLBACK")
            raise
        self.store.committed()

    def _state_due(self) -> bool:
        store = self.store
        if store.must_write or store.pending_rows >= self.state_write_rows:
            return True
        since = store.pending_since
        return since is not None and time.monotonic() - since >= self.state_write_seconds

    def _catch_up(self, cursor: Cursor, fold_seq: int) -> None:
        """Make the mirror hold the state as of the cursor: when it is not current, read the
        state tables and fold the events they do not reflect yet into state only, at the time
        of the last fold (their aggregate changes are already counted). Rows changed here are
        marked with `fold_seq`, so that whoever follows `state_fold_seq` sees them once written.
        """
        if self.store.mirror_current(cursor.fold_seq):
            return
        self.store.open_mirror(_SPECS, cursor.fold_seq)
        after, upto = cursor.state_event_seq, cursor.event_seq
        if after >= upto:
            return
        assert cursor.evaluated_at is not None, "events were folded without an evaluation time"
        started, folded = time.monotonic(), 0
        while after < upto:
            events = self._new_events(after, upto)
            if events.is_empty():
                break
            self._apply(events, cursor.evaluated_at, fold_seq, aggregates=False)
            after = int(events["event_seq"].max())  # type: ignore[arg-type]
            folded += len(events)
        log.info(
            "folded %d events again into the metrics state (written up to event %d, aggregates "
            "up to %d) in %.2f s",
            folded,
            cursor.state_event_seq,
            upto,
            time.monotonic() - started,
        )

    def fold_all(self, now: datetime) -> int:
        """Fold until no event is left; return how many were folded."""
        total = 0
        while True:
            report = self.fold(now)
            total += report.events
            if report.events < self.batch_max:
                return total

    def compact(self, now: datetime) -> int:
        """Merge the aggregate change log of folds older than the history keeps one by one
        (see `metrics.history`), one transaction; return the rows it saved."""
        with self._transaction():
            # Only folds whose state is written: the publisher reads the change log up to there.
            upto = self.store.cursor().state_fold_seq
            saved = history.compact(self.con, upto, now, self.history)
        return saved

    def demote(self) -> int:
        """Move state rows that did not change since the previous demotion (and are not open
        carts or checkouts) to the cold tables; return how many moved. Writes the state kept in
        memory first."""
        with self._transaction():
            _, cursor = self._write_all_state()
            moved = 0
            if self._demoted_upto is not None:
                for spec in _SPECS:
                    moved += self.store.demote(spec, self._demoted_upto)
        self._demoted_upto = cursor.fold_seq
        return moved

    def pending(self) -> int:
        cursor = self.store.cursor().event_seq
        row = self.con.execute(
            f"SELECT count(*) FROM {EVENTS} WHERE event_seq > ?", [cursor]
        ).fetchall()[0]
        return int(row[0]) if row else 0

    # ------------------------------------------------------------------ the fold

    def _new_events(self, after: int, upto: int | None = None) -> pl.DataFrame:
        bound = "" if upto is None else f" AND event_seq <= {int(upto)}"
        frame: pl.DataFrame = self.con.sql(
            f"SELECT {_EVENT_COLUMNS} FROM {EVENTS} WHERE event_seq > {int(after)}{bound} "
            f"ORDER BY event_seq LIMIT {int(self.batch_max)}"
        ).pl()
        if all(frame.schema[name] == dtype for name, dtype in _EVENT_TYPES.items()):
            return frame  # DuckDB's types are already the fold's
        return frame.with_columns(pl.col(name).cast(dtype) for name, dtype in _EVENT_TYPES.items())

    def _apply(
        self, events: pl.DataFrame, now: datetime, fold_seq: int, *, aggregates: bool = True
    ) -> AggregateChanges:
        """Fold `events` and advance timers to `now` in the mirror; return the aggregate changes
        (unless `aggregates` is false) for the caller to write with the cursor."""
        store = self.store
        dues = [
            F.due(store.hot(F.CHECKOUT), self.checkout_abandon_after, now),
            F.due(store.hot(F.CART), self.cart_abandon_after, now),
        ]
        if events.is_empty():  # a timer tick: there is work only if a timeout passed
            due_checkouts, due_carts = pl.collect_all(dues, engine=F.ENGINE)
            if _all_empty(due_checkouts, due_carts):
                return ()
            batch, _ = F.reduce_batch(events)
        else:
            batch, (due_checkouts, due_carts) = F.reduce_batch(events, *dues)

        # Stages whose entities the batch does not touch are skipped: each costs a few
        # frame operations even when empty.
        orders_old, orders_new = self._fold_orders(batch)
        checkout_order_refs, cart_order_refs = pl.collect_all(
            [
                F.link_deltas(orders_old, orders_new, F.order_converts(), "checkout_token"),
                F.link_deltas(orders_old, orders_new, F.order_converts(), "cart_token"),
            ],
            engine=F.ENGINE,
        )
        refunds_old, refunds_new = self._fold_refunds(batch, orders_new)
        checkouts_old, checkouts_new = self._fold_checkouts(
            batch, checkout_order_refs, due_checkouts, now
        )
        cart_checkout_refs = F.link_deltas(
            checkouts_old, checkouts_new, pl.col("fate") == "converted", "cart_token"
        ).collect(engine=F.ENGINE)
        carts_old, carts_new = self._fold_carts(
            batch, cart_order_refs, cart_checkout_refs, due_carts, now
        )

        # aggregates: new contributions minus old ones, by cause
        changes: AggregateChanges = ()
        if aggregates:
            changes = _aggregate_changes(
                fold_seq,
                batch,
                (orders_old, orders_new),
                (refunds_old, refunds_new),
                (carts_old, carts_new),
                (checkouts_old, checkouts_new),
            )
        for spec, old, new in (
            (F.ORDER, orders_old, orders_new),
            (F.REFUND, refunds_old, refunds_new),
            (F.CHECKOUT, checkouts_old, checkouts_new),
            (F.CART, carts_old, carts_new),
        ):
            store.save(spec, new, old, fold_seq)
        return changes

    def _fold_orders(self, batch: F.Batch) -> tuple[pl.DataFrame, pl.DataFrame]:
        empty = self.store.empty(F.ORDER)
        if batch.orders.is_empty():
            return empty, empty
        old = self.store.load(F.ORDER, batch.orders)
        return old, F.merge(F.ORDER, old, batch.orders).collect(engine=F.ENGINE)

    def _fold_refunds(
        self, batch: F.Batch, orders_new: pl.DataFrame
    ) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Refunds in the batch and those of every touched order."""
        empty = self.store.empty(F.REFUND)
        if _all_empty(batch.refunds, batch.orders):
            return empty, empty
        old = self.store.load_refunds(F.REFUND, batch.refunds, batch.orders)
        merged = F.merge(F.REFUND, old, batch.refunds).collect(engine=F.ENGINE)
        parent_keys = merged.lazy().select("source", pl.col("order_id").alias("id")).unique()
        missing = parent_keys.join(orders_new.lazy().select(F.KEY), on=F.KEY, how="anti").collect(
            engine=F.ENGINE
        )
        parents = pl.concat(
            [orders_new.lazy(), self.store.load(F.ORDER, missing).lazy()],
            how="diagonal_relaxed",
        )
        return old, F.evaluate_refunds(merged, parents)

    def _fold_checkouts(
        self, batch: F.Batch, order_refs: pl.DataFrame, due: pl.DataFrame, now: datetime
    ) -> tuple[pl.DataFrame, pl.DataFrame]:
        empty = self.store.empty(F.CHECKOUT)
        if _all_empty(batch.checkouts, order_refs, due):
            return empty, empty
        old = self.store.load(F.CHECKOUT, _keys(batch.checkouts, order_refs, due))
        merged = F.merge(F.CHECKOUT, old, batch.checkouts)
        merged = F.add_refs(F.CHECKOUT, merged, order_refs, "order_refs")
        new = F.evaluate_fate(
            merged,
            pl.col("platform_completed") | (pl.col("order_refs") > 0),
            self.checkout_abandon_after,
            now,
        )
        return old, new.collect(engine=F.ENGINE)

    def _fold_carts(
        self,
        batch: F.Batch,
        order_refs: pl.DataFrame,
        checkout_refs: pl.DataFrame,
        due: pl.DataFrame,
        now: datetime,
    ) -> tuple[pl.DataFrame, pl.DataFrame]:
        empty = self.store.empty(F.CART)
        if _all_empty(batch.carts, order_refs, checkout_refs, due):
            return empty, empty
        old = self.store.load(F.CART, _keys(batch.carts, order_refs, checkout_refs, due))
        merged = F.merge(F.CART, old, batch.carts)
        merged = F.add_refs(F.CART, merged, order_refs, "order_refs")
        merged = F.add_refs(F.CART, merged, checkout_refs, "checkout_refs")
        new = F.evaluate_fate(
            merged,
            pl.col("platform_converted")
            | (pl.col("order_refs") > 0)
            | (pl.col("checkout_refs") > 0),
            self.cart_abandon_after,
            now,
        )
        return old, new.collect(engine=F.ENGINE)
