"""The incremental metrics engine: folds new events into state and aggregates, exactly once.

One fold is one transaction: read the events after the durable cursor, load the state rows they
touch (plus carts and checkouts whose abandonment timeout has passed), compute new state with the
pure functions of `metrics.fold`, apply the change of every aggregate bucket (new contribution
minus old), save state, and move the cursor. A crash anywhere rolls the whole fold back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb
import polars as pl

from ingest.storage.schema import EVENTS, INGEST_MIGRATIONS, migrate
from metrics import fold as F
from metrics.schema import METRICS_MIGRATIONS
from metrics.store import StateStore

log = logging.getLogger("shoppulse.metrics")

_EVENT_COLUMNS = (
    "event_seq, source, received_at, kind, entity_id, created_at, updated_at, cart_token, "
    "checkout_token, order_id, currency, gross_sales, discounts, refund_amount, test, "
    "cancelled, deleted, abandoned, completed"
)


@dataclass(frozen=True)
class FoldReport:
    events: int
    cursor: int
    evaluated_at: datetime
    transitions: int


_SPECS = (F.ORDER, F.REFUND, F.CHECKOUT, F.CART)


def _keys(*frames: pl.DataFrame) -> pl.DataFrame:
    """The (source, id) pairs of these frames (not unique)."""
    return pl.concat([f.lazy().select(F.KEY) for f in frames]).collect(engine=F.ENGINE)


def _all_empty(*frames: pl.DataFrame) -> bool:
    return all(f.is_empty() for f in frames)


class MetricsEngine:
    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        *,
        cart_abandon_after: timedelta = timedelta(minutes=60),
        checkout_abandon_after: timedelta = timedelta(minutes=10),
        batch_max: int = 20_000,
    ) -> None:
        self.con = con.cursor()
        migrate(self.con, "ingest", INGEST_MIGRATIONS)
        migrate(self.con, "metrics", METRICS_MIGRATIONS)
        self.store = StateStore(self.con)
        self.cart_abandon_after = cart_abandon_after
        self.checkout_abandon_after = checkout_abandon_after
        self.batch_max = batch_max
        self._demoted_upto: int | None = None

    # ------------------------------------------------------------------ public

    def fold(self, now: datetime) -> FoldReport:
        """Fold at most `batch_max` new events and advance timers to `now`, in one transaction."""
        con = self.con
        con.execute("BEGIN")
        try:
            cursor, fold_seq, evaluated_at, watermark = self.store.cursor()
            self.store.open_mirror(_SPECS, fold_seq)
            if evaluated_at is not None and evaluated_at > now:
                now = evaluated_at  # time never runs backwards for the state
            events = self._new_events(cursor)
            fold_seq += 1
            transitions = self._apply(events, now, fold_seq)
            if not events.is_empty():
                cursor = int(events["event_seq"].max())  # type: ignore[arg-type]
                newest = events["received_at"].max()
                if watermark is None or (newest is not None and newest > watermark):  # type: ignore[operator]
                    watermark = newest  # type: ignore[assignment]
            self.store.set_cursor(cursor, fold_seq, now, watermark)
            con.execute("COMMIT")
        except BaseException:
            self.store.drop_mirror()
            con.execute("ROLLBACK")
            raise
        self.store.commit_mirror(fold_seq)
        return FoldReport(len(events), cursor, now, transitions)

    def fold_all(self, now: datetime) -> int:
        """Fold until no event is left; return how many were folded."""
        total = 0
        while True:
            report = self.fold(now)
            total += report.events
            if report.events < self.batch_max:
                return total

    def compact(self) -> int:
        """Merge the aggregate change log, one transaction; return the rows it saved."""
        self.con.execute("BEGIN")
        try:
            saved = self.store.compact()
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        return saved

    def demote(self) -> int:
        """Move state rows that did not change since the previous demotion (and are not open
        carts or checkouts) to the cold tables; return how many moved."""
        self.con.execute("BEGIN")
        try:
            fold_seq = self.store.cursor()[1]
            moved = 0
            if self._demoted_upto is not None:
                self.store.open_mirror(_SPECS, fold_seq)
                for spec in _SPECS:
                    moved += self.store.demote(spec, self._demoted_upto)
            self.con.execute("COMMIT")
        except BaseException:
            self.store.drop_mirror()
            self.con.execute("ROLLBACK")
            raise
        self._demoted_upto = fold_seq
        return moved

    def pending(self) -> int:
        cursor = self.store.cursor()[0]
        row = self.con.execute(
            f"SELECT count(*) FROM {EVENTS} WHERE event_seq > ?", [cursor]
        ).fetchall()[0]
        return int(row[0]) if row else 0

    # ------------------------------------------------------------------ the fold

    def _new_events(self, cursor: int) -> pl.DataFrame:
        frame: pl.DataFrame = self.con.sql(
            f"SELECT {_EVENT_COLUMNS} FROM {EVENTS} WHERE event_seq > {int(cursor)} "
            f"ORDER BY event_seq LIMIT {int(self.batch_max)}"
        ).pl()
        return frame.with_columns(
            pl.col("received_at", "created_at", "updated_at").cast(F.TS),
            pl.col("gross_sales", "discounts", "refund_amount").cast(F.MONEY),
        )

    def _apply(self, events: pl.DataFrame, now: datetime, fold_seq: int) -> int:
        store = self.store
        due_checkouts = F.due(store.hot(F.CHECKOUT), self.checkout_abandon_after, now)
        due_carts = F.due(store.hot(F.CART), self.cart_abandon_after, now)
        if _all_empty(events, due_checkouts, due_carts):
            return 0  # nothing to fold and no timeout passed: the common timer tick

        # Stages whose entities the batch does not touch are skipped: each costs a few
        # frame operations even when empty.
        batch = F.reduce_batch(events)
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

        # aggregates: new contributions minus old ones
        sales, funnel = pl.collect_all(
            [
                F.net_change(
                    F.sales_contributions(orders_new, refunds_new, 1),
                    F.sales_contributions(orders_old, refunds_old, -1),
                    F.SALES_KEY,
                    F.SALES_VALUES,
                ),
                F.net_change(
                    F.funnel_contributions(carts_new, checkouts_new, 1),
                    F.funnel_contributions(carts_old, checkouts_old, -1),
                    F.FUNNEL_KEY,
                    F.FUNNEL_VALUES,
                ),
            ],
            engine=F.ENGINE,
        )
        store.add_sales(sales, fold_seq)
        store.add_funnel(funnel, fold_seq)

        for spec, old, new in (
            (F.ORDER, orders_old, orders_new),
            (F.REFUND, refunds_old, refunds_new),
            (F.CHECKOUT, checkouts_old, checkouts_new),
            (F.CART, carts_old, carts_new),
        ):
            store.save(spec, new, old, fold_seq)
        return _transitions(carts_old, carts_new) + _transitions(checkouts_old, checkouts_new)

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


def _transitions(old: pl.DataFrame, new: pl.DataFrame) -> int:
    """How many of the `old` rows changed fate."""
    if old.is_empty():
        return 0
    changed = (
        old.lazy()
        .select(*F.KEY, pl.col("fate").alias("_old"))
        .join(new.lazy().select(*F.KEY, "fate"), on=F.KEY)
        .filter(pl.col("_old") != pl.col("fate"))
    )
    return changed.collect(engine=F.ENGINE).height
