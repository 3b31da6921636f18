"""Why an aggregate changed: the cause every change row of a fold carries (pure Polars, no I/O).

A fold changes a bucket because entities changed; each entity's change gets one cause, and the
contributions it adds and removes carry it. So the changes of a bucket, split by cause, always
sum to its whole change. The causes, in the order they are decided:

- `replay` — the entity's newest event in the batch came out of quarantine (`shoppulse replay`);
- `reconciliation_fill` — it was fetched from the store's API to fill in what a webhook left out
  (BigCommerce order amounts);
- `delivery` — the entity's first version (after its bucket closed: a late delivery), or new
  activity on a cart or checkout;
- `cancellation` — an order was cancelled, un-cancelled or deleted (and the refunds it takes along);
- `order_edit` — a newer version of an order changed its amounts, currency or test flag;
- `refund` — a refund was created or changed;
- `abandonment` — a cart or checkout timed out or the platform declared it abandoned;
- `abandonment_reversed` — an abandoned cart or checkout converted after all (a later order).
"""

from __future__ import annotations

from typing import Final

import polars as pl

KEY = ["source", "id"]

REPLAY: Final = "replay"
FILL: Final = "reconciliation_fill"
DELIVERY: Final = "delivery"
CANCELLATION: Final = "cancellation"
ORDER_EDIT: Final = "order_edit"
REFUND: Final = "refund"
ABANDONMENT: Final = "abandonment"
ABANDONMENT_REVERSED: Final = "abandonment_reversed"

CAUSES: Final = (
    DELIVERY,
    CANCELLATION,
    REFUND,
    ORDER_EDIT,
    ABANDONMENT,
    ABANDONMENT_REVERSED,
    FILL,
    REPLAY,
)
#: Event origins (the `origin` of an event) that are causes of their own.
ORIGIN_CAUSES: Final = {"replay": REPLAY, "fill": FILL}

_CAUSE = pl.String()
_EMPTY = pl.LazyFrame(schema={"source": pl.String(), "id": pl.String(), "cause": _CAUSE})


def _lit(cause: str) -> pl.Expr:
    return pl.lit(cause, _CAUSE)


_NO_ORIGINS = pl.DataFrame(schema={"source": pl.String(), "id": pl.String(), "origin": _CAUSE})


def origins(batch: pl.DataFrame) -> pl.DataFrame:
    """The origin of each entity's newest event in a reduced batch frame (none when the batch
    has no origins other than webhooks)."""
    if "origin" not in batch.columns:
        return _NO_ORIGINS
    special = batch.filter(pl.col("origin").is_in(list(ORIGIN_CAUSES)))
    return special.select(*KEY, "origin") if not special.is_empty() else _NO_ORIGINS


def _with_origin(frame: pl.LazyFrame, origins: pl.DataFrame, decided: pl.Expr) -> pl.LazyFrame:
    """KEY and `cause`: the cause of the batch origin where it has one, else `decided`."""
    if origins.is_empty():
        return frame.select(*KEY, decided.alias("cause"))
    origin = origins.lazy().select(
        *KEY, pl.col("origin").replace_strict(ORIGIN_CAUSES, return_dtype=_CAUSE).alias("_oc2")
    )
    return frame.join(origin, on=KEY, how="left").select(
        *KEY, pl.coalesce("_oc2", decided).alias("cause")
    )


def order_causes(old: pl.DataFrame, new: pl.DataFrame, origins: pl.DataFrame) -> pl.LazyFrame:
    """The cause of each order's change (`new` holds every key of `old`)."""
    if new.is_empty():
        return _EMPTY
    before = old.lazy().select(
        *KEY,
        pl.col("has_version").alias("_had"),
        pl.col("cancelled").fill_null(False).alias("_was_cancelled"),
        pl.col("deleted").alias("_was_deleted"),
    )
    decided = (
        pl.when(~pl.col("_had").fill_null(False))
        .then(_lit(DELIVERY))
        .when(
            (pl.col("cancelled").fill_null(False) != pl.col("_was_cancelled"))
            | (pl.col("deleted") != pl.col("_was_deleted"))
        )
        .then(_lit(CANCELLATION))
        .otherwise(_lit(ORDER_EDIT))
    )
    return _with_origin(new.lazy().join(before, on=KEY, how="left"), origins, decided)


def refund_causes(
    new: pl.DataFrame, batch: pl.DataFrame, orders: pl.LazyFrame, origins: pl.DataFrame
) -> pl.LazyFrame:
    """A refund in the batch changed because of itself; one re-evaluated with its order, because
    of the order's change (a cancellation, say)."""
    if new.is_empty():
        return _EMPTY
    in_batch = batch.lazy().select(*KEY, pl.lit(True).alias("_in_batch"))
    parents = orders.select("source", pl.col("id").alias("order_id"), pl.col("cause").alias("_oc"))
    decided = (
        pl.when(pl.col("_in_batch").fill_null(False))
        .then(_lit(REFUND))
        .otherwise(pl.coalesce("_oc", _lit(REFUND)))
    )
    joined = (
        new.lazy()
        .join(in_batch, on=KEY, how="left")
        .join(parents, on=["source", "order_id"], how="left")
    )
    return _with_origin(joined, origins, decided)


def fate_causes(old: pl.DataFrame, new: pl.DataFrame, origins: pl.DataFrame) -> pl.LazyFrame:
    """The cause of each cart's or checkout's change, from its fate before and after."""
    if new.is_empty():
        return _EMPTY
    before = old.lazy().select(*KEY, pl.col("fate").alias("_fate_was"))
    was, now = pl.col("_fate_was"), pl.col("fate")
    decided = (
        pl.when(was.is_null())
        .then(_lit(DELIVERY))
        .when((was == "abandoned") & (now == "converted"))
        .then(_lit(ABANDONMENT_REVERSED))
        .when((now == "abandoned") & (was != "abandoned"))
        .then(_lit(ABANDONMENT))
        .otherwise(_lit(DELIVERY))
    )
    return _with_origin(new.lazy().join(before, on=KEY, how="left"), origins, decided)
