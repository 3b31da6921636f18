"""The published datasets: each one a set of Parquet files with fixed columns, and the expression
in the live database each column is read from.

The publisher writes them (`shoppulse.publish.publisher`); the analyst views
(`shoppulse.publish.views`) read them. docs/sql.md documents every column; a test holds the two
together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ingest.storage.schema import MONEY_TYPE
from metrics.schema import FUNNEL_LOG, SALES_LOG, SUM_TYPE, ChangeLog


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    live: str | None = None  # the expression in the live table; None: filled in by the publisher

    @property
    def expression(self) -> str:
        return self.live if self.live is not None else f"NULL::{self.type}"


@dataclass(frozen=True)
class Dataset:
    """One published dataset: a set of Parquet files with these columns."""

    name: str
    columns: tuple[Column, ...]

    def select_list(self) -> str:
        """SQL: every column read from the live file and cast to its published type."""
        return ", ".join(f"CAST({c.expression} AS {c.type}) AS {c.name}" for c in self.columns)

    def empty_sql(self) -> str:
        cols = ", ".join(f"NULL::{c.type} AS {c.name}" for c in self.columns)
        return f"(SELECT {cols} WHERE false)"

    def source_sql(self, files: Sequence[str]) -> str:
        """A FROM item that reads exactly `files` (or an empty relation of the right shape)."""
        if not files:
            return self.empty_sql()
        listed = ", ".join(quote(f) for f in files)
        return f"read_parquet([{listed}], hive_partitioning = false)"


def quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _cols(*spec: tuple[str, str] | tuple[str, str, str]) -> tuple[Column, ...]:
    return tuple(Column(s[0], s[1], s[2] if len(s) == 3 else s[0]) for s in spec)


TS = "TIMESTAMPTZ"
MONEY = MONEY_TYPE
SUM = SUM_TYPE


def _sums(log: ChangeLog) -> tuple[Column, ...]:
    """The additive columns of an aggregate's change log, as published per minute."""
    return tuple(Column(name, kind, name) for name, kind in log.values)


EVENTS = Dataset(
    "events",
    _cols(
        ("event_seq", "BIGINT"),
        ("delivery_seq", "BIGINT"),
        ("source", "VARCHAR"),
        ("received_at", TS),
        ("kind", "VARCHAR"),
        ("action", "VARCHAR"),
        ("entity_id", "VARCHAR"),
        ("created_at", TS),
        ("updated_at", TS),
        ("cart_token", "VARCHAR"),
        ("checkout_token", "VARCHAR"),
        ("order_id", "VARCHAR"),
        ("currency", "VARCHAR"),
        ("gross_sales", MONEY),
        ("discounts", MONEY),
        ("refund_amount", MONEY),
        ("test", "BOOLEAN"),
        ("cancelled", "BOOLEAN"),
        ("deleted", "BOOLEAN"),
        ("abandoned", "BOOLEAN"),
        ("completed", "BOOLEAN"),
    ),
)
DELIVERIES = Dataset(
    "deliveries",
    _cols(
        ("delivery_seq", "BIGINT"),
        ("source", "VARCHAR"),
        ("delivery_id", "VARCHAR"),
        ("topic", "VARCHAR"),
        ("received_at", TS),
        ("status", "VARCHAR"),
        ("reason", "VARCHAR"),
        ("event_count", "INTEGER"),
    ),
)
#: Later status changes of published deliveries (a replay of a quarantined delivery).
DELIVERY_OVERRIDES = Dataset(
    "delivery_overrides",
    _cols(
        ("delivery_seq", "BIGINT"),
        ("status", "VARCHAR"),
        ("reason", "VARCHAR"),
        ("event_count", "INTEGER"),
    ),
)
#: The fields of one order line, in the `lines` list of the orders dataset.
LINE_FIELDS = (
    ("line", "INTEGER"),
    ("product_id", "VARCHAR"),
    ("variant_id", "VARCHAR"),
    ("sku", "VARCHAR"),
    ("title", "VARCHAR"),
    ("quantity", "BIGINT"),
    ("unit_price", MONEY),
    ("discount", MONEY),
)
LINES = "STRUCT(" + ", ".join(f"{name} {kind}" for name, kind in LINE_FIELDS) + ")[]"

ORDERS = Dataset(
    "orders",
    (
        *_cols(
            ("source", "VARCHAR"),
            ("id", "VARCHAR"),
            ("created_at", TS),
            ("updated_at", TS, "v_updated_at"),
            ("currency", "VARCHAR"),
            ("gross_sales", MONEY),
            ("discounts", MONEY),
            ("test", "BOOLEAN"),
            ("cancelled", "BOOLEAN"),
            ("deleted", "BOOLEAN"),
            ("cart_token", "VARCHAR"),
            ("checkout_token", "VARCHAR"),
            ("version_seq", "BIGINT", "v_seq"),
        ),
        # From the version's stored event (see shoppulse/publish/event_columns.py).
        Column("name", "VARCHAR", None),
        Column("lines", LINES, None),
    ),
)
REFUNDS = Dataset(
    "refunds",
    (
        *_cols(
            ("source", "VARCHAR"),
            ("id", "VARCHAR"),
            ("order_id", "VARCHAR"),
            ("created_at", TS),
            ("updated_at", TS, "v_updated_at"),
            ("currency", "VARCHAR"),
            ("amount", MONEY),
            ("counted", "BOOLEAN"),
            ("counted_currency", "VARCHAR"),
            ("version_seq", "BIGINT", "v_seq"),
        ),
        Column("reason", "VARCHAR", None),
    ),
)
CARTS = Dataset(
    "carts",
    (
        *_cols(
            ("source", "VARCHAR"),
            ("id", "VARCHAR"),
            ("created_at", TS),
            ("updated_at", TS, "v_updated_at"),
            ("last_activity", TS),
            ("platform_abandoned", "BOOLEAN"),
            ("platform_converted", "BOOLEAN"),
            ("fate", "VARCHAR"),
            ("version_seq", "BIGINT", "v_seq"),
        ),
        Column("currency", "VARCHAR", None),
        Column("value", MONEY, None),
    ),
)
CHECKOUTS = Dataset(
    "checkouts",
    (
        *_cols(
            ("source", "VARCHAR"),
            ("id", "VARCHAR"),
            ("created_at", TS),
            ("updated_at", TS, "v_updated_at"),
            ("last_activity", TS),
            ("cart_token", "VARCHAR"),
            ("platform_abandoned", "BOOLEAN"),
            ("platform_completed", "BOOLEAN"),
            ("fate", "VARCHAR"),
            ("version_seq", "BIGINT", "v_seq"),
        ),
        Column("currency", "VARCHAR", None),
        Column("value", MONEY, None),
    ),
)
SALES_MINUTE = Dataset(
    "sales_minute",
    (*_cols(("source", "VARCHAR"), ("currency", "VARCHAR"), ("minute", TS)), *_sums(SALES_LOG)),
)
FUNNEL_MINUTE = Dataset(
    "funnel_minute",
    (*_cols(("source", "VARCHAR"), ("minute", TS)), *_sums(FUNNEL_LOG)),
)
#: Every aggregate change with its fold and cause (`metrics.history.changes_sql`), appended by fold.
METRIC_CHANGES = Dataset(
    "metric_changes",
    _cols(
        ("fold_seq", "BIGINT"),
        ("folded_at", TS),
        ("cause", "VARCHAR"),
        ("source", "VARCHAR"),
        ("currency", "VARCHAR"),
        ("minute", TS),
        ("metric", "VARCHAR"),
        ("value", SUM),
    ),
)
INGEST_COUNTS = Dataset(
    "ingest_counts",
    _cols(
        ("source", "VARCHAR"),
        ("outcome", "VARCHAR"),
        ("reason", "VARCHAR"),
        ("count", "BIGINT"),
        ("last_at", TS),
    ),
)

DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        EVENTS,
        DELIVERIES,
        DELIVERY_OVERRIDES,
        ORDERS,
        REFUNDS,
        CARTS,
        CHECKOUTS,
        SALES_MINUTE,
        FUNNEL_MINUTE,
        METRIC_CHANGES,
        INGEST_COUNTS,
    )
}
