"""Pure Polars functions of the incremental fold: no I/O.

The engine loads the state rows a batch touches, and these functions
1. reduce the batch's events to one candidate version per entity,
2. merge candidates into stored state (business-version ordering, sticky flags, max activity),
3. evaluate each cart's and checkout's fate at `now`,
4. turn state rows into additive contributions per minute, so that the change of the aggregates
   is (contributions of the new rows) minus (contributions of the old rows).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache, cached_property
from typing import Final

import polars as pl

from ingest.storage.schema import MONEY_TYPE
from metrics.causes import DELIVERY
from metrics.schema import (
    CART_STATE,
    CHECKOUT_STATE,
    FUNNEL_LOG,
    ORDER_STATE,
    REFUND_STATE,
    SALES_LOG,
    StateTable,
)

KEY = ["source", "id"]
#: A column of 64-bit hashes of (source, id), the keys of the engine's cold index (see store).
KEY_HASH = "_key_hash"
TS = pl.Datetime("us", "UTC")
MONEY = pl.Decimal(18, 4)
SUM = pl.Decimal(38, 4)
#: The Polars type of each SQL type of the state tables' columns.
POLARS_TYPES: dict[str, pl.DataType] = {
    "VARCHAR": pl.String(),
    "BOOLEAN": pl.Boolean(),
    "INTEGER": pl.Int32(),
    "BIGINT": pl.Int64(),
    "TIMESTAMPTZ": TS,
    MONEY_TYPE: MONEY,
}
#: Stand-in for a missing updated_at in version comparisons: older than any real version.
OLDEST = datetime(1900, 1, 1, tzinfo=UTC)

# The aggregate changes a fold computes have the columns of the change logs they go to.
SALES_KEY = list(SALES_LOG.key)
SALES_VALUES = list(SALES_LOG.value_names)
FUNNEL_KEY = list(FUNNEL_LOG.key)
FUNNEL_VALUES = list(FUNNEL_LOG.value_names)
FATES = ("converted", "abandoned", "open")
#: Polars engine for every query of the fold. "auto" runs some plans on the streaming engine,
#: whose start-up costs more than the work on the few thousand rows a fold handles: a fold of
#: 1,000 events on a 1M-event history took 94-100 ms with "auto", 71-73 ms in memory.
ENGINE: Final = "in-memory"


@dataclass(frozen=True)
class Kind:
    """How one entity kind's state is built from its events."""

    state: StateTable  # its table and columns
    present: str  # the flag that says a (version) event was folded: has_version or seen
    version_fields: tuple[str, ...]  # taken from the latest version
    sticky: tuple[str, ...] = ()  # OR over all events, never undone
    #: (flag, time column, seq column): the flag as the latest event that says anything about it
    #: says (a deletion, or a restore out of a reversible trash), latest by (time, seq); the
    #: columns hold that event's time and seq.
    toggles: tuple[tuple[str, str, str], ...] = ()
    earliest: tuple[str, ...] = ()  # the least value over all events (creation times)
    latest_activity: bool = False  # last_activity = max over all events
    counters: tuple[str, ...] = ()  # link reference counts maintained by deltas
    derived: tuple[str, ...] = ()  # evaluated after merging (fate, counted, ...)

    @property
    def table(self) -> str:
        return self.state.name

    @cached_property
    def schema(self) -> tuple[tuple[str, pl.DataType], ...]:
        """The state table's columns as Polars types, in table order."""
        return tuple((column.name, POLARS_TYPES[column.type]) for column in self.state.columns)

    @cached_property
    def columns(self) -> list[str]:
        return [name for name, _ in self.schema]

    def empty(self) -> pl.DataFrame:
        return pl.DataFrame(schema=dict(self.schema))


ORDER = Kind(
    state=ORDER_STATE,
    present="has_version",
    # An order's creation time is the earliest any of its events gives (deletions included),
    # whichever fold saw it: a later version cannot move the order to a later bucket.
    earliest=("created_at",),
    version_fields=(
        "currency",
        "gross_sales",
        "discounts",
        "test",
        "cancelled",
        "cart_token",
        "checkout_token",
    ),
    # Deleted: as the latest deletion or restore says, by its time (updated_at, or when it arrived
    # for a deletion notice without one). Platforms without a trash send no restore, so for them
    # a deletion is for good.
    toggles=(("deleted", "d_at", "d_seq"),),
)

REFUND = Kind(
    state=REFUND_STATE,
    present="_present",
    version_fields=("order_id", "created_at", "currency", "amount"),
    derived=("counted", "counted_currency"),
)

CHECKOUT = Kind(
    state=CHECKOUT_STATE,
    present="seen",
    version_fields=("cart_token",),
    sticky=("platform_abandoned", "platform_completed"),
    earliest=("created_at",),
    latest_activity=True,
    counters=("order_refs",),
    derived=("fate",),
)

CART = Kind(
    state=CART_STATE,
    present="seen",
    version_fields=(),
    sticky=("platform_abandoned", "platform_converted"),
    earliest=("created_at",),
    latest_activity=True,
    counters=("order_refs", "checkout_refs"),
    derived=("fate",),
)


# ----------------------------------------------------------------------------- constants

# Literal expressions are built once: building one costs more than evaluating it on a small batch.
_TRUE = pl.lit(True)
_OLDEST = pl.lit(OLDEST, TS)
_NO_STRING = pl.lit(None, pl.String)
_EMPTY_STRING = pl.lit("")
_ZERO_SUM = pl.lit(0, SUM)
_ZERO_COUNT = pl.lit(0, pl.Int64)
_FATES = {fate: pl.lit(fate) for fate in FATES}
_SIGNS = {sign: pl.lit(sign, pl.Int64) for sign in (-1, 1)}
_LINK_SIGNS = {sign: pl.lit(sign, pl.Int32) for sign in (-1, 1)}
_KEYS_SCHEMA = {"source": pl.String(), "id": pl.String()}
_DELTAS_SCHEMA = {**_KEYS_SCHEMA, "delta": pl.Int32()}


# ----------------------------------------------------------------------------- reduce


def key_hash(source: str = "source", key: str = "id") -> pl.Expr:
    """The 64-bit hash of (source, key): the same for the same strings within a process."""
    return pl.struct(pl.col(source).alias("source"), pl.col(key).alias("id")).hash(seed=7)


_KEY_HASH = key_hash().alias(KEY_HASH)


@dataclass(frozen=True)
class Batch:
    """A batch of events reduced to one candidate row per entity, for each kind (orders and
    refunds with their KEY_HASH: the engine looks them up by it)."""

    orders: pl.DataFrame
    refunds: pl.DataFrame
    checkouts: pl.DataFrame
    carts: pl.DataFrame


def reduce_batch(events: pl.DataFrame, *also: pl.LazyFrame) -> tuple[Batch, list[pl.DataFrame]]:
    """Reduce the events of every kind: one sort of the batch, then one grouping per kind; the
    `also` queries are collected with the groupings (one call fewer) and returned with them.

    The events are sorted by version, (updated_at, event_seq) with a missing updated_at older
    than any, so that the last row of a group is the entity's latest version."""
    by_version = (
        events.lazy()
        .with_columns(pl.col("updated_at").fill_null(_OLDEST).alias("_vkey"))
        .sort(["_vkey", "event_seq"])
        .rename({"entity_id": "id"})
        .collect(engine=ENGINE)
        .lazy()
    )
    orders, refunds, checkouts, carts, *collected = pl.collect_all(
        [
            _reduce_orders(by_version),
            _reduce_refunds(by_version),
            _reduce_funnel(by_version, "checkout"),
            _reduce_funnel(by_version, "cart"),
            *also,
        ],
        engine=ENGINE,
    )
    return Batch(orders, refunds, checkouts, carts), collected


def _latest(column: str, among: pl.Expr | None = None) -> pl.Expr:
    """In a grouping of events sorted by version: `column` of the latest version (`among` the
    events where it holds); null when there is none."""
    values = pl.col(column) if among is None else pl.col(column).filter(among)
    return values.last()


def _reduce_orders(events: pl.LazyFrame) -> pl.LazyFrame:
    """Deletions count for `deleted` and `created_at`; versions come from the other events."""
    return events.filter(_IS_ORDER).group_by(KEY).agg(*_ORDER_AGGS).with_columns(_KEY_HASH)


def _reduce_refunds(events: pl.LazyFrame) -> pl.LazyFrame:
    return events.filter(_IS_REFUND).group_by(KEY).agg(*_REFUND_AGGS).select(*_REFUND_COLUMNS)


def _reduce_funnel(events: pl.LazyFrame, kind: str) -> pl.LazyFrame:
    """Carts or checkouts: deletions are housekeeping and are not folded."""
    keep, prepare, aggs = _FUNNEL_REDUCTIONS[kind]
    return (
        events.filter(keep)
        .with_columns(*prepare)
        .group_by(KEY)
        .agg(*aggs)
        .with_columns(_TRUE.alias("seen"))
    )


# The reductions' expressions, built once: building them costs more than running them on a
# batch of a few thousand events.
#: An order version: neither a deletion nor a restore marker (which carries no version).
_VERSION = ~pl.col("deleted") & ~pl.col("restored")
_IS_ORDER = pl.col("kind") == "order"
#: Events that say whether an order is deleted: deletions, and restores out of a trash.
_SAYS_DELETED = pl.col("deleted") | pl.col("restored")
#: When such an event happened: its updated_at, else (a deletion notice) when it arrived.
_TOGGLE_AT = pl.coalesce("updated_at", "received_at").filter(_SAYS_DELETED)
_TOGGLE_ORDER = [_TOGGLE_AT, pl.col("event_seq").filter(_SAYS_DELETED)]
#: The origin of an entity's newest event in the batch (a change's cause: see metrics.causes).
_ORIGIN = pl.col("origin").last()
_ORDER_AGGS = (
    _ORIGIN,
    *[
        pl.col(name).filter(_SAYS_DELETED).sort_by(_TOGGLE_ORDER).last().alias(alias)
        for name, alias in (("deleted", "deleted"), ("event_seq", "d_seq"))
    ],
    _TOGGLE_AT.sort_by(_TOGGLE_ORDER).last().alias("d_at"),
    pl.col("created_at").min(),
    _VERSION.any().alias("has_version"),
    _latest("updated_at", _VERSION).alias("v_updated_at"),
    _latest("event_seq", _VERSION).alias("v_seq"),
    *[_latest(name, _VERSION).alias(name) for name in ORDER.version_fields],
)
_IS_REFUND = pl.col("kind") == "refund"
_REFUND_AGGS = (
    _ORIGIN,
    _latest("updated_at").alias("v_updated_at"),
    _latest("event_seq").alias("v_seq"),
    _latest("order_id"),
    _latest("created_at"),
    _latest("currency"),
    _latest("refund_amount"),
)
_REFUND_COLUMNS: tuple[str | pl.Expr, ...] = (
    *KEY,
    _TRUE.alias("_present"),
    "v_updated_at",
    "v_seq",
    pl.col("order_id").fill_null(""),
    "created_at",
    "currency",
    pl.col("refund_amount").fill_null(0).cast(MONEY).alias("amount"),
    "origin",
    _KEY_HASH,
)


def _funnel_reduction(
    kind: str, spec: Kind, converted: pl.Expr
) -> tuple[pl.Expr, tuple[pl.Expr, ...], tuple[pl.Expr, ...]]:
    prepare = (
        converted,
        pl.col("abandoned").alias("platform_abandoned"),
        pl.coalesce("updated_at", "created_at").alias("last_activity"),
    )
    aggs = (
        _ORIGIN,
        _latest("updated_at").alias("v_updated_at"),
        _latest("event_seq").alias("v_seq"),
        *[_latest(name) for name in spec.version_fields],
        pl.col("last_activity").max(),
        pl.col("created_at").min(),
        *[pl.col(name).any() for name in spec.sticky],
    )
    return (pl.col("kind") == kind) & ~pl.col("deleted"), prepare, aggs


_FUNNEL_REDUCTIONS = {
    "cart": _funnel_reduction(
        "cart",
        CART,
        (pl.col("completed") | pl.col("order_id").is_not_null()).alias("platform_converted"),
    ),
    "checkout": _funnel_reduction(
        "checkout", CHECKOUT, pl.col("completed").alias("platform_completed")
    ),
}


# ----------------------------------------------------------------------------- merge


def merge(spec: Kind, old: pl.DataFrame, batch: pl.DataFrame) -> pl.LazyFrame:
    """New state for every key in `old` or `batch`: batch versions win when not older.

    Columns of `old` that are not state (such as where a row was loaded from) are dropped."""
    renamed = batch.lazy().rename({c: f"{c}_b" for c in batch.columns if c not in KEY})
    joined = old.lazy().join(renamed, on=KEY, how="full", coalesce=True)
    return joined.select(*KEY, *_merge_exprs(spec), *[c for c in spec.derived if c in old.columns])


_MERGE_EXPRS: dict[str, list[pl.Expr]] = {}


def _merge_exprs(spec: Kind) -> list[pl.Expr]:
    exprs = _MERGE_EXPRS.get(spec.table)
    if exprs is None:
        exprs = _MERGE_EXPRS[spec.table] = _build_merge_exprs(spec)
    return exprs


def _build_merge_exprs(spec: Kind) -> list[pl.Expr]:
    has_b = pl.col("v_seq_b").is_not_null()
    has_o = pl.col("v_seq").is_not_null()
    take = has_b & (
        ~has_o
        | (pl.col("v_updated_at_b").fill_null(_OLDEST) >= pl.col("v_updated_at").fill_null(_OLDEST))
    )
    exprs: list[pl.Expr] = [
        pl.when(take).then(pl.col(f"{c}_b")).otherwise(pl.col(c)).alias(c)
        for c in ("v_updated_at", "v_seq", *spec.version_fields)
    ]
    if spec.present != "_present":
        exprs.append((has_o | has_b).alias(spec.present))
    exprs += [
        (pl.col(c).fill_null(False) | pl.col(f"{c}_b").fill_null(False)).alias(c)
        for c in spec.sticky
    ]
    for flag, at, seq in spec.toggles:
        later = pl.col(f"{seq}_b").is_not_null() & (
            pl.col(seq).is_null()
            | (pl.col(f"{at}_b") > pl.col(at))
            | ((pl.col(f"{at}_b") == pl.col(at)) & (pl.col(f"{seq}_b") > pl.col(seq)))
        )
        exprs += [
            pl.when(later)
            .then(pl.col(f"{flag}_b"))
            .otherwise(pl.col(flag).fill_null(False))
            .alias(flag),
            *[
                pl.when(later).then(pl.col(f"{c}_b")).otherwise(pl.col(c)).alias(c)
                for c in (at, seq)
            ],
        ]
    exprs += [pl.min_horizontal(c, f"{c}_b").alias(c) for c in spec.earliest]
    if spec.latest_activity:
        exprs.append(pl.max_horizontal("last_activity", "last_activity_b").alias("last_activity"))
    exprs += [pl.col(c).fill_null(0).alias(c) for c in spec.counters]
    return exprs


def add_refs(spec: Kind, state: pl.LazyFrame, deltas: pl.DataFrame, counter: str) -> pl.LazyFrame:
    """Add link-count deltas (columns source, id, delta) to `counter`; new keys get placeholders."""
    if deltas.is_empty():
        return state
    joined = state.join(deltas.lazy(), on=KEY, how="full", coalesce=True)
    return joined.with_columns(_ref_fills(spec, counter)).drop("delta")


_REF_FILLS: dict[tuple[str, str], list[pl.Expr]] = {}


def _ref_fills(spec: Kind, counter: str) -> list[pl.Expr]:
    fill = _REF_FILLS.get((spec.table, counter))
    if fill is None:
        fill = [
            (pl.col(counter).fill_null(0) + pl.col("delta").fill_null(0))
            .cast(pl.Int32)
            .alias(counter)
        ]
        fill += [pl.col(c).fill_null(0) for c in spec.counters if c != counter]
        fill += [pl.col(c).fill_null(False) for c in (spec.present, *spec.sticky)]
        _REF_FILLS[(spec.table, counter)] = fill
    return fill


def link_deltas(old: pl.DataFrame, new: pl.DataFrame, active: pl.Expr, link: str) -> pl.LazyFrame:
    """-1 for the old row's link and +1 for the new row's link where `active` holds."""
    parts = [
        frame.lazy()
        .filter(active & pl.col(link).is_not_null())
        .select("source", pl.col(link).alias("id"), _LINK_SIGNS[sign].alias("delta"))
        for frame, sign in ((old, -1), (new, 1))
        if not frame.is_empty()
    ]
    if not parts:
        return pl.LazyFrame(schema=_DELTAS_SCHEMA)
    return (
        pl.concat(parts)
        .group_by(KEY)
        .agg(pl.col("delta").sum().cast(pl.Int32))
        .filter(pl.col("delta") != 0)
    )


# ----------------------------------------------------------------------------- evaluate


def order_converts() -> pl.Expr:
    """An order converts its cart and checkout: a real version of a non-test order."""
    return _ORDER_CONVERTS


# An order counts in sales: a real version, not test, not deleted, not cancelled.
_ORDER_COUNTS = (
    pl.col("has_version")
    & pl.col("created_at").is_not_null()
    & ~pl.col("test").fill_null(False)
    & ~pl.col("deleted")
    & ~pl.col("cancelled").fill_null(False)
)
_ORDER_CONVERTS = pl.col("has_version") & ~pl.col("test").fill_null(False)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def timestamp(moment: datetime) -> pl.Expr:
    """`moment` as a literal of type TS (a naive moment is UTC).

    Built from its integer microseconds: a datetime literal costs far more to build."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return pl.lit((moment - _EPOCH) // _MICROSECOND, pl.Int64).cast(TS)


def evaluate_fate(
    state: pl.LazyFrame, converted: pl.Expr, timeout: timedelta, now: datetime
) -> pl.LazyFrame:
    fate = (
        pl.when(~pl.col("seen"))
        .then(_NO_STRING)
        .when(converted)
        .then(_FATES["converted"])
        .when(
            pl.col("platform_abandoned")
            | (pl.col("last_activity") + pl.lit(timeout) <= timestamp(now)).fill_null(False)
        )
        .then(_FATES["abandoned"])
        .otherwise(_FATES["open"])
    )
    return state.with_columns(fate.alias("fate"))


def due(state: pl.DataFrame, timeout: timedelta, now: datetime) -> pl.LazyFrame:
    """Keys of the open rows (carts or checkouts) whose inactivity timeout has passed at `now`."""
    return (
        state.lazy()
        .filter((pl.col("fate") == "open") & (pl.col("last_activity") <= timestamp(now - timeout)))
        .select(KEY)
    )


def evaluate_refunds(refunds: pl.DataFrame, orders: pl.LazyFrame) -> pl.DataFrame:
    """A refund counts as a return while its order counts; its currency defaults to the order's."""
    parents = orders.select(
        "source",
        pl.col("id").alias("order_id"),
        _ORDER_COUNTS.alias("_order_counts"),
        pl.col("currency").alias("_order_currency"),
    )
    return (
        refunds.lazy()
        .drop([c for c in ("counted", "counted_currency") if c in refunds.columns])
        .join(parents, on=["source", "order_id"], how="left")
        .with_columns(
            (pl.col("_order_counts").fill_null(False) & pl.col("created_at").is_not_null()).alias(
                "counted"
            ),
            pl.coalesce("currency", "_order_currency", _EMPTY_STRING).alias("counted_currency"),
        )
        .drop("_order_counts", "_order_currency")
        .collect(engine=ENGINE)
    )


# ----------------------------------------------------------------------------- contributions


def _minute(column: str) -> pl.Expr:
    return pl.col(column).dt.truncate("1m").alias("minute")


def _order_sales(sign: int) -> list[pl.Expr]:
    return [
        pl.col("source"),
        pl.col("currency").fill_null(""),
        _minute("created_at"),
        _SIGNS[sign].alias("orders"),
        (pl.col("gross_sales").fill_null(0).cast(SUM) * sign).cast(SUM).alias("gross_sales"),
        (pl.col("discounts").fill_null(0).cast(SUM) * sign).cast(SUM).alias("discounts"),
        _ZERO_SUM.alias("returns"),
    ]


def _refund_sales(sign: int) -> list[pl.Expr]:
    return [
        pl.col("source"),
        pl.col("counted_currency").alias("currency"),
        _minute("created_at"),
        _ZERO_COUNT.alias("orders"),
        _ZERO_SUM.alias("gross_sales"),
        _ZERO_SUM.alias("discounts"),
        (pl.col("amount").cast(SUM) * sign).cast(SUM).alias("returns"),
    ]


def _funnel_counts(created: str, names: tuple[str, ...], sign: int) -> list[pl.Expr]:
    columns = {name: _ZERO_COUNT for name in FUNNEL_VALUES}
    columns[created] = _SIGNS[sign]
    for fate, name in zip(FATES, names, strict=True):
        columns[name] = pl.when(pl.col("fate") == fate).then(sign).otherwise(0).cast(pl.Int64)
    return [pl.col("source"), _minute("created_at"), *[e.alias(n) for n, e in columns.items()]]


_CART_FATES = ("carts_converted", "carts_abandoned", "carts_open")
_CHECKOUT_FATES = ("checkouts_completed", "checkouts_abandoned", "checkouts_open")
_ORDER_SALES = {sign: _order_sales(sign) for sign in (-1, 1)}
_REFUND_SALES = {sign: _refund_sales(sign) for sign in (-1, 1)}
_CART_FUNNEL = {sign: _funnel_counts("carts_created", _CART_FATES, sign) for sign in (-1, 1)}
_CHECKOUT_FUNNEL = {
    sign: _funnel_counts("checkouts_started", _CHECKOUT_FATES, sign) for sign in (-1, 1)
}
_SEEN_AND_CREATED = pl.col("seen") & pl.col("created_at").is_not_null()


def sales_contributions(
    orders: pl.DataFrame,
    refunds: pl.DataFrame,
    sign: int,
    order_causes: pl.LazyFrame,
    refund_causes: pl.LazyFrame,
) -> pl.LazyFrame:
    """Additive sales figures of these rows, multiplied by `sign` (+1 new, -1 old), each with
    the cause of its entity's change (columns source, id, cause)."""
    parts: list[pl.LazyFrame] = []
    if not orders.is_empty():
        parts.append(
            orders.lazy()
            .filter(_ORDER_COUNTS)
            .join(order_causes, on=KEY, how="left")
            .select(*_ORDER_SALES[sign], _CAUSE)
        )
    if not refunds.is_empty():
        parts.append(
            refunds.lazy()
            .filter(pl.col("counted"))
            .join(refund_causes, on=KEY, how="left")
            .select(*_REFUND_SALES[sign], _CAUSE)
        )
    return pl.concat(parts) if parts else _EMPTY_SALES.lazy()


def funnel_contributions(
    carts: pl.DataFrame,
    checkouts: pl.DataFrame,
    sign: int,
    cart_causes: pl.LazyFrame,
    checkout_causes: pl.LazyFrame,
) -> pl.LazyFrame:
    parts = [
        frame.lazy()
        .filter(_SEEN_AND_CREATED)
        .join(causes, on=KEY, how="left")
        .select(*counts[sign], _CAUSE)
        for frame, counts, causes in (
            (carts, _CART_FUNNEL, cart_causes),
            (checkouts, _CHECKOUT_FUNNEL, checkout_causes),
        )
        if not frame.is_empty()
    ]
    return pl.concat(parts) if parts else _EMPTY_FUNNEL.lazy()


#: A contribution whose entity has no decided cause (none is left out: see metrics.causes).
_CAUSE = pl.col("cause").fill_null(pl.lit(DELIVERY))


_EMPTY_SALES = pl.DataFrame(
    schema={
        "source": pl.String,
        "currency": pl.String,
        "minute": TS,
        "orders": pl.Int64,
        "gross_sales": SUM,
        "discounts": SUM,
        "returns": SUM,
        "cause": pl.String,
    }
)
_EMPTY_FUNNEL = pl.DataFrame(
    schema={
        "source": pl.String,
        "minute": TS,
        **{name: pl.Int64 for name in FUNNEL_VALUES},
        "cause": pl.String,
    }
)


def net_change(
    new: pl.LazyFrame, old: pl.LazyFrame, key: list[str], values: list[str], changed: pl.Expr
) -> pl.LazyFrame:
    """Sum new (+) and old (-) contributions per bucket and cause, keeping those that changed;
    the columns of the change log: key, values, `changed` (the fold), cause."""
    sums, nonzero = _net_exprs(tuple(values))
    return (
        pl.concat([new, old])
        .group_by([*key, "cause"])
        .agg(sums)
        .filter(nonzero)
        .select(*key, *values, changed, "cause")
    )


@cache
def _net_exprs(values: tuple[str, ...]) -> tuple[list[pl.Expr], pl.Expr]:
    return [pl.col(v).sum() for v in values], pl.any_horizontal([pl.col(v) != 0 for v in values])
