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

import polars as pl

KEY = ["source", "id"]
TS = pl.Datetime("us", "UTC")
MONEY = pl.Decimal(18, 4)
SUM = pl.Decimal(38, 4)
#: Stand-in for a missing updated_at in version comparisons: older than any real version.
OLDEST = datetime(1900, 1, 1, tzinfo=UTC)

SALES_KEY = ["source", "currency", "minute"]
SALES_VALUES = ["orders", "gross_sales", "discounts", "returns"]
FUNNEL_KEY = ["source", "minute"]
FUNNEL_VALUES = [
    "carts_created",
    "carts_converted",
    "carts_abandoned",
    "carts_open",
    "checkouts_started",
    "checkouts_completed",
    "checkouts_abandoned",
    "checkouts_open",
]
FATES = ("converted", "abandoned", "open")


@dataclass(frozen=True)
class Kind:
    """How one entity kind's state is built from its events."""

    table: str
    present: str  # the flag that says a (version) event was folded: has_version or seen
    version_fields: tuple[str, ...]  # taken from the latest version
    sticky: tuple[str, ...] = ()  # OR over all events, never undone
    earliest: tuple[str, ...] = ()  # the least value over all events (creation times)
    latest_activity: bool = False  # last_activity = max over all events
    counters: tuple[str, ...] = ()  # link reference counts maintained by deltas
    derived: tuple[str, ...] = ()  # evaluated after merging (fate, counted, ...)
    schema: tuple[tuple[str, pl.DataType], ...] = ()

    @property
    def columns(self) -> list[str]:
        return [name for name, _ in self.schema]

    def empty(self) -> pl.DataFrame:
        return pl.DataFrame(schema=dict(self.schema))


def _schema(*pairs: tuple[str, pl.DataType]) -> tuple[tuple[str, pl.DataType], ...]:
    return pairs


ORDER = Kind(
    table="metrics_orders",
    present="has_version",
    version_fields=(
        "created_at",
        "currency",
        "gross_sales",
        "discounts",
        "test",
        "cancelled",
        "cart_token",
        "checkout_token",
    ),
    sticky=("deleted",),
    schema=_schema(
        ("source", pl.String()),
        ("id", pl.String()),
        ("has_version", pl.Boolean()),
        ("v_updated_at", TS),
        ("v_seq", pl.Int64()),
        ("created_at", TS),
        ("currency", pl.String()),
        ("gross_sales", MONEY),
        ("discounts", MONEY),
        ("test", pl.Boolean()),
        ("cancelled", pl.Boolean()),
        ("deleted", pl.Boolean()),
        ("cart_token", pl.String()),
        ("checkout_token", pl.String()),
        ("changed_seq", pl.Int64()),
    ),
)

REFUND = Kind(
    table="metrics_refunds",
    present="_present",
    version_fields=("order_id", "created_at", "currency", "amount"),
    derived=("counted", "counted_currency"),
    schema=_schema(
        ("source", pl.String()),
        ("id", pl.String()),
        ("order_id", pl.String()),
        ("v_updated_at", TS),
        ("v_seq", pl.Int64()),
        ("created_at", TS),
        ("currency", pl.String()),
        ("amount", MONEY),
        ("counted", pl.Boolean()),
        ("counted_currency", pl.String()),
        ("changed_seq", pl.Int64()),
    ),
)

CHECKOUT = Kind(
    table="metrics_checkouts",
    present="seen",
    version_fields=("cart_token",),
    sticky=("platform_abandoned", "platform_completed"),
    earliest=("created_at",),
    latest_activity=True,
    counters=("order_refs",),
    derived=("fate",),
    schema=_schema(
        ("source", pl.String()),
        ("id", pl.String()),
        ("seen", pl.Boolean()),
        ("v_updated_at", TS),
        ("v_seq", pl.Int64()),
        ("created_at", TS),
        ("last_activity", TS),
        ("cart_token", pl.String()),
        ("platform_abandoned", pl.Boolean()),
        ("platform_completed", pl.Boolean()),
        ("order_refs", pl.Int32()),
        ("fate", pl.String()),
        ("changed_seq", pl.Int64()),
    ),
)

CART = Kind(
    table="metrics_carts",
    present="seen",
    version_fields=(),
    sticky=("platform_abandoned", "platform_converted"),
    earliest=("created_at",),
    latest_activity=True,
    counters=("order_refs", "checkout_refs"),
    derived=("fate",),
    schema=_schema(
        ("source", pl.String()),
        ("id", pl.String()),
        ("seen", pl.Boolean()),
        ("v_updated_at", TS),
        ("v_seq", pl.Int64()),
        ("created_at", TS),
        ("last_activity", TS),
        ("platform_abandoned", pl.Boolean()),
        ("platform_converted", pl.Boolean()),
        ("order_refs", pl.Int32()),
        ("checkout_refs", pl.Int32()),
        ("fate", pl.String()),
        ("changed_seq", pl.Int64()),
    ),
)


# ----------------------------------------------------------------------------- reduce


def _latest(events: pl.DataFrame) -> pl.DataFrame:
    """One row per entity: the event with the greatest (updated_at, event_seq)."""
    return (
        events.with_columns(pl.col("updated_at").fill_null(OLDEST).alias("_vkey"))
        .sort(["_vkey", "event_seq"])
        .unique(subset=KEY, keep="last", maintain_order=False)
        .drop("_vkey")
    )


def reduce_orders(events: pl.DataFrame) -> pl.DataFrame:
    orders = events.filter(pl.col("kind") == "order").rename({"entity_id": "id"})
    versions = _latest(orders.filter(~pl.col("deleted"))).select(
        *KEY,
        pl.lit(True).alias("has_version"),
        pl.col("updated_at").alias("v_updated_at"),
        pl.col("event_seq").alias("v_seq"),
        *ORDER.version_fields,
    )
    deleted = orders.group_by(KEY).agg(pl.col("deleted").any(), pl.col("created_at").min())
    return deleted.join(versions, on=KEY, how="left").with_columns(
        pl.col("has_version").fill_null(False)
    )


def reduce_refunds(events: pl.DataFrame) -> pl.DataFrame:
    refunds = events.filter(pl.col("kind") == "refund").rename({"entity_id": "id"})
    return _latest(refunds).select(
        *KEY,
        pl.lit(True).alias("_present"),
        pl.col("updated_at").alias("v_updated_at"),
        pl.col("event_seq").alias("v_seq"),
        pl.col("order_id").fill_null(""),
        "created_at",
        "currency",
        pl.col("refund_amount").fill_null(0).cast(MONEY).alias("amount"),
    )


def _reduce_funnel(events: pl.DataFrame, kind: str, spec: Kind) -> pl.DataFrame:
    """Carts or checkouts: deletions are housekeeping and are not folded."""
    rows = events.filter((pl.col("kind") == kind) & ~pl.col("deleted")).rename({"entity_id": "id"})
    if kind == "cart":
        rows = rows.with_columns(
            (pl.col("completed") | pl.col("order_id").is_not_null()).alias("platform_converted")
        )
    else:
        rows = rows.with_columns(pl.col("completed").alias("platform_completed"))
    rows = rows.with_columns(
        pl.col("abandoned").alias("platform_abandoned"),
        pl.coalesce("updated_at", "created_at").alias("last_activity"),
    )
    versions = _latest(rows).select(
        *KEY,
        pl.lit(True).alias("seen"),
        pl.col("updated_at").alias("v_updated_at"),
        pl.col("event_seq").alias("v_seq"),
        *spec.version_fields,
    )
    aggregated = rows.group_by(KEY).agg(
        pl.col("last_activity").max(),
        pl.col("created_at").min(),
        *[pl.col(name).any() for name in spec.sticky],
    )
    return versions.join(aggregated, on=KEY, how="left")


def reduce_checkouts(events: pl.DataFrame) -> pl.DataFrame:
    return _reduce_funnel(events, "checkout", CHECKOUT)


def reduce_carts(events: pl.DataFrame) -> pl.DataFrame:
    return _reduce_funnel(events, "cart", CART)


# ----------------------------------------------------------------------------- merge


def merge(spec: Kind, old: pl.DataFrame, batch: pl.DataFrame) -> pl.DataFrame:
    """New state for every key in `old` or `batch`: batch versions win when not older."""
    batch = batch.rename({c: f"{c}_b" for c in batch.columns if c not in KEY})
    joined = old.join(batch, on=KEY, how="full", coalesce=True)
    has_b = pl.col("v_seq_b").is_not_null()
    has_o = pl.col("v_seq").is_not_null()
    take = has_b & (
        ~has_o
        | (pl.col("v_updated_at_b").fill_null(OLDEST) >= pl.col("v_updated_at").fill_null(OLDEST))
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
    exprs += [pl.min_horizontal(c, f"{c}_b").alias(c) for c in spec.earliest]
    if spec.latest_activity:
        exprs.append(pl.max_horizontal("last_activity", "last_activity_b").alias("last_activity"))
    exprs += [pl.col(c).fill_null(0).alias(c) for c in spec.counters]
    derived = [c for c in spec.derived if c in old.columns]
    merged = joined.select(*KEY, *exprs, *derived)
    return merged


def add_refs(spec: Kind, state: pl.DataFrame, deltas: pl.DataFrame, counter: str) -> pl.DataFrame:
    """Add link-count deltas (columns source, id, delta) to `counter`; new keys get placeholders."""
    if deltas.is_empty():
        return state
    joined = state.join(deltas, on=KEY, how="full", coalesce=True)
    fill: list[pl.Expr] = [
        (pl.col(counter).fill_null(0) + pl.col("delta").fill_null(0)).cast(pl.Int32).alias(counter)
    ]
    fill += [pl.col(c).fill_null(0) for c in spec.counters if c != counter]
    fill += [pl.col(c).fill_null(False) for c in (spec.present, *spec.sticky)]
    return joined.with_columns(fill).drop("delta")


def link_deltas(old: pl.DataFrame, new: pl.DataFrame, active: pl.Expr, link: str) -> pl.DataFrame:
    """-1 for the old row's link and +1 for the new row's link where `active` holds."""
    parts = [
        frame.filter(active & pl.col(link).is_not_null()).select(
            "source", pl.col(link).alias("id"), pl.lit(sign, pl.Int32).alias("delta")
        )
        for frame, sign in ((old, -1), (new, 1))
        if not frame.is_empty()
    ]
    if not parts:
        return pl.DataFrame(schema={"source": pl.String, "id": pl.String, "delta": pl.Int32})
    return (
        pl.concat(parts)
        .group_by(KEY)
        .agg(pl.col("delta").sum().cast(pl.Int32))
        .filter(pl.col("delta") != 0)
    )


# ----------------------------------------------------------------------------- evaluate


def order_counts() -> pl.Expr:
    """An order counts in sales: a real version, not test, not deleted, not cancelled."""
    return (
        pl.col("has_version")
        & pl.col("created_at").is_not_null()
        & ~pl.col("test").fill_null(False)
        & ~pl.col("deleted")
        & ~pl.col("cancelled").fill_null(False)
    )


def order_converts() -> pl.Expr:
    """An order converts its cart and checkout: a real version of a non-test order."""
    return pl.col("has_version") & ~pl.col("test").fill_null(False)


def evaluate_fate(
    state: pl.DataFrame, converted: pl.Expr, timeout: timedelta, now: datetime
) -> pl.DataFrame:
    fate = (
        pl.when(~pl.col("seen"))
        .then(pl.lit(None, pl.String))
        .when(converted)
        .then(pl.lit("converted"))
        .when(
            pl.col("platform_abandoned")
            | (pl.col("last_activity") + pl.lit(timeout) <= pl.lit(now, TS)).fill_null(False)
        )
        .then(pl.lit("abandoned"))
        .otherwise(pl.lit("open"))
    )
    return state.with_columns(fate.alias("fate"))


def evaluate_refunds(refunds: pl.DataFrame, orders: pl.DataFrame) -> pl.DataFrame:
    """A refund counts as a return while its order counts; its currency defaults to the order's."""
    parents = orders.select(
        "source",
        pl.col("id").alias("order_id"),
        order_counts().alias("_order_counts"),
        pl.col("currency").alias("_order_currency"),
    )
    return (
        refunds.drop([c for c in ("counted", "counted_currency") if c in refunds.columns])
        .join(parents, on=["source", "order_id"], how="left")
        .with_columns(
            (pl.col("_order_counts").fill_null(False) & pl.col("created_at").is_not_null()).alias(
                "counted"
            ),
            pl.coalesce("currency", "_order_currency", pl.lit("")).alias("counted_currency"),
        )
        .drop("_order_counts", "_order_currency")
    )


# ----------------------------------------------------------------------------- contributions


def _minute(column: str) -> pl.Expr:
    return pl.col(column).dt.truncate("1m").alias("minute")


def sales_contributions(orders: pl.DataFrame, refunds: pl.DataFrame, sign: int) -> pl.DataFrame:
    """Additive sales figures of these rows, multiplied by `sign` (+1 new, -1 old)."""
    zero = pl.lit(0, SUM)
    parts: list[pl.DataFrame] = []
    if not orders.is_empty():
        parts.append(
            orders.filter(order_counts()).select(
                "source",
                pl.col("currency").fill_null(""),
                _minute("created_at"),
                pl.lit(sign, pl.Int64).alias("orders"),
                (pl.col("gross_sales").fill_null(0).cast(SUM) * sign)
                .cast(SUM)
                .alias("gross_sales"),
                (pl.col("discounts").fill_null(0).cast(SUM) * sign).cast(SUM).alias("discounts"),
                zero.alias("returns"),
            )
        )
    if not refunds.is_empty():
        parts.append(
            refunds.filter(pl.col("counted")).select(
                "source",
                pl.col("counted_currency").alias("currency"),
                _minute("created_at"),
                pl.lit(0, pl.Int64).alias("orders"),
                zero.alias("gross_sales"),
                zero.alias("discounts"),
                (pl.col("amount").cast(SUM) * sign).cast(SUM).alias("returns"),
            )
        )
    return pl.concat(parts) if parts else _empty_sales()


def funnel_contributions(carts: pl.DataFrame, checkouts: pl.DataFrame, sign: int) -> pl.DataFrame:
    parts: list[pl.DataFrame] = []
    for frame, created, names in (
        (carts, "carts_created", ("carts_converted", "carts_abandoned", "carts_open")),
        (
            checkouts,
            "checkouts_started",
            ("checkouts_completed", "checkouts_abandoned", "checkouts_open"),
        ),
    ):
        if frame.is_empty():
            continue
        columns = {name: pl.lit(0, pl.Int64) for name in FUNNEL_VALUES}
        columns[created] = pl.lit(sign, pl.Int64)
        for fate, name in zip(FATES, names, strict=True):
            columns[name] = pl.when(pl.col("fate") == fate).then(sign).otherwise(0).cast(pl.Int64)
        parts.append(
            frame.filter(pl.col("seen") & pl.col("created_at").is_not_null()).select(
                "source", _minute("created_at"), *[expr.alias(n) for n, expr in columns.items()]
            )
        )
    return pl.concat(parts) if parts else _empty_funnel()


def _empty_sales() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "source": pl.String,
            "currency": pl.String,
            "minute": TS,
            "orders": pl.Int64,
            "gross_sales": SUM,
            "discounts": SUM,
            "returns": SUM,
        }
    )


def _empty_funnel() -> pl.DataFrame:
    return pl.DataFrame(
        schema={"source": pl.String, "minute": TS, **{name: pl.Int64 for name in FUNNEL_VALUES}}
    )


def net_change(
    new: pl.DataFrame, old: pl.DataFrame, key: list[str], values: list[str]
) -> pl.DataFrame:
    """Sum new (+) and old (-) contributions per bucket, keeping buckets that changed."""
    both = pl.concat([new, old])
    if both.is_empty():
        return both
    summed = both.group_by(key).agg([pl.col(v).sum() for v in values])
    return summed.filter(pl.any_horizontal([pl.col(v) != 0 for v in values]))
