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


def _keys(*frames: pl.DataFrame) -> pl.DataFrame:
    parts = [f.select(F.KEY) for f in frames if not f.is_empty()]
    if not parts:
        return pl.DataFrame(schema={"source": pl.String, "id": pl.String})
    return pl.concat(parts).unique()


def _without_rowid(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.drop([c for c in ("_rowid", "_cold") if c in frame.columns])


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
            con.execute("ROLLBACK")
            raise
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
                for spec in (F.ORDER, F.REFUND, F.CHECKOUT, F.CART):
                    moved += self.store.demote(spec, self._demoted_upto)
            self.con.execute("COMMIT")
        except BaseException:
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
        converts = F.order_converts()
        due_checkouts = store.due_keys(F.CHECKOUT, self.checkout_abandon_after, now)
        due_carts = store.due_keys(F.CART, self.cart_abandon_after, now)
        if events.is_empty() and due_checkouts.is_empty() and due_carts.is_empty():
            return 0  # nothing to fold and no timeout passed: the common timer tick

        # Stages whose entities the batch does not touch are skipped: each costs a few
        # statements and dozens of frame operations even when empty.

        # orders
        order_batch = F.reduce_orders(events)
        orders_old = orders_new = store.empty(F.ORDER)
        if not order_batch.is_empty():
            orders_old = store.load(F.ORDER, order_batch)
            orders_new = F.merge(F.ORDER, _without_rowid(orders_old), order_batch)
        checkout_order_refs = F.link_deltas(orders_old, orders_new, converts, "checkout_token")
        cart_order_refs = F.link_deltas(orders_old, orders_new, converts, "cart_token")

        # refunds: those in the batch and those of every touched order
        refund_batch = F.reduce_refunds(events)
        refunds_old = refunds_new = store.empty(F.REFUND)
        if not (refund_batch.is_empty() and order_batch.is_empty()):
            refunds_old = store.load_refunds(F.REFUND, refund_batch, order_batch)
            refunds_new = F.merge(F.REFUND, _without_rowid(refunds_old), refund_batch)
            parent_keys = refunds_new.select("source", pl.col("order_id").alias("id")).unique()
            missing = parent_keys.join(orders_new.select(F.KEY), on=F.KEY, how="anti")
            parents = pl.concat(
                [_without_rowid(orders_new), _without_rowid(store.load(F.ORDER, missing))],
                how="diagonal_relaxed",
            )
            refunds_new = F.evaluate_refunds(refunds_new, parents)

        # checkouts
        checkout_batch = F.reduce_checkouts(events)
        checkout_keys = _keys(
            checkout_batch,
            checkout_order_refs,
            due_checkouts,
        )
        checkouts_old = checkouts_new = store.empty(F.CHECKOUT)
        if not checkout_keys.is_empty():
            checkouts_old = store.load(F.CHECKOUT, checkout_keys)
            checkouts_new = F.merge(F.CHECKOUT, _without_rowid(checkouts_old), checkout_batch)
            checkouts_new = F.add_refs(F.CHECKOUT, checkouts_new, checkout_order_refs, "order_refs")
            checkouts_new = F.evaluate_fate(
                checkouts_new,
                pl.col("platform_completed") | (pl.col("order_refs") > 0),
                self.checkout_abandon_after,
                now,
            )
        cart_checkout_refs = F.link_deltas(
            checkouts_old, checkouts_new, pl.col("fate") == "converted", "cart_token"
        )

        # carts
        cart_batch = F.reduce_carts(events)
        cart_keys = _keys(
            cart_batch,
            cart_order_refs,
            cart_checkout_refs,
            due_carts,
        )
        carts_old = carts_new = store.empty(F.CART)
        if not cart_keys.is_empty():
            carts_old = store.load(F.CART, cart_keys)
            carts_new = F.merge(F.CART, _without_rowid(carts_old), cart_batch)
            carts_new = F.add_refs(F.CART, carts_new, cart_order_refs, "order_refs")
            carts_new = F.add_refs(F.CART, carts_new, cart_checkout_refs, "checkout_refs")
            carts_new = F.evaluate_fate(
                carts_new,
                pl.col("platform_converted")
                | (pl.col("order_refs") > 0)
                | (pl.col("checkout_refs") > 0),
                self.cart_abandon_after,
                now,
            )

        # aggregates: new contributions minus old ones
        sales = F.net_change(
            F.sales_contributions(orders_new, refunds_new, 1),
            F.sales_contributions(orders_old, refunds_old, -1),
            F.SALES_KEY,
            F.SALES_VALUES,
        )
        funnel = F.net_change(
            F.funnel_contributions(carts_new, checkouts_new, 1),
            F.funnel_contributions(carts_old, checkouts_old, -1),
            F.FUNNEL_KEY,
            F.FUNNEL_VALUES,
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

        transitions = 0
        for old, new in ((carts_old, carts_new), (checkouts_old, checkouts_new)):
            if not old.is_empty():
                changed = old.select(*F.KEY, pl.col("fate").alias("_old")).join(
                    new.select(*F.KEY, "fate"), on=F.KEY
                )
                transitions += changed.filter(pl.col("_old") != pl.col("fate")).height
        return transitions
