"""The metrics engine's tables in the live DuckDB file: entity state, aggregates and the cursor.

Entity state holds each cart, checkout, order and refund as last folded (its latest version and
its fate at the last evaluation). Each kind is split in two tables with one view over both: `_hot`
holds what changed recently and every open cart and checkout, `_cold` the rest. A fold reads the
small hot table; it reads the cold one only for keys an in-memory index says are there (a late
update of an old entity), so its cost does not grow with history.

The state tables may lag the aggregates by a few seconds: the engine keeps the state changes of
recent folds in memory and writes them every `metrics_state_write_seconds` (and at every stop).
The cursor says how far each is: `event_seq`/`fold_seq` for the aggregates, `state_event_seq`/
`state_fold_seq` for the state tables. After a crash the engine folds the events between the two
again, into state only, before anything else: the aggregates already count them.

The aggregates are additive figures per UTC minute, kept as an append-only log of changes (one
row per touched bucket, cause and fold: appending is far cheaper than updating in place) that is
compacted now and then; the `*_minute` views sum it. Ratios are computed at read time. Hour and
day figures are sums of minutes.

The change log is also the history of the figures: `metrics_folds` dates every fold (its
evaluation time), so the sums of the changes of the folds evaluated by a moment are the figures
as they were reported then, and each change row names its cause (see `metrics.causes`).
Compaction keeps every fold of a recent period and merges older ones per hour, then per day
(see `metrics.history`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ingest.storage.schema import MONEY_TYPE, Schema
from metrics.definitions import FUNNEL_COUNTS

ORDERS = "metrics_orders"
REFUNDS = "metrics_refunds"
CARTS = "metrics_carts"
CHECKOUTS = "metrics_checkouts"
SALES = "metrics_sales_minute"  # a view: per-minute sums of the deltas
FUNNEL = "metrics_funnel_minute"  # a view, likewise
SALES_DELTAS = "metrics_sales_deltas"
FUNNEL_DELTAS = "metrics_funnel_deltas"
CURSOR = "metrics_cursor"
FOLDS = "metrics_folds"  # one row per fold kept in the history: when it was evaluated

SUM_TYPE = "DECIMAL(38,4)"


@dataclass(frozen=True)
class ChangeLog:
    """One aggregate: its append-only log of changes (`table`) and the view that sums it per
    minute (`view`). A bucket is named by `key`; `values` are its additive columns with the SQL
    type of their sums. Every change row also has `changed_seq` (its fold) and `cause`."""

    table: str
    view: str
    key: tuple[str, ...]
    values: tuple[tuple[str, str], ...]

    @property
    def value_names(self) -> tuple[str, ...]:
        """The additive columns, in table order."""
        return tuple(name for name, _ in self.values)

    def sums(self, upto_fold: int | None = None) -> str:
        """SQL: per-minute sums of the log, the columns of its view; with `upto_fold`, as of that
        fold (each change row carries its fold)."""
        keys = ", ".join(self.key)
        sums = ", ".join(f"sum({name})::{kind} AS {name}" for name, kind in self.values)
        where = "" if upto_fold is None else f"WHERE changed_seq <= {int(upto_fold)} "
        return (
            f"SELECT {keys}, {sums}, max(changed_seq) AS changed_seq FROM {self.table} "
            f"{where}GROUP BY {keys}"
        )


SALES_LOG = ChangeLog(
    SALES_DELTAS,
    SALES,
    ("source", "currency", "minute"),
    (
        ("orders", "BIGINT"),
        ("gross_sales", SUM_TYPE),
        ("discounts", SUM_TYPE),
        ("returns", SUM_TYPE),
    ),
)
FUNNEL_LOG = ChangeLog(
    FUNNEL_DELTAS, FUNNEL, ("source", "minute"), tuple((name, "BIGINT") for name in FUNNEL_COUNTS)
)
CHANGE_LOGS = (SALES_LOG, FUNNEL_LOG)


@dataclass(frozen=True)
class StateColumn:
    """A column of an entity-state table: its SQL type, and the migration that added it."""

    name: str
    type: str
    not_null: bool = False
    since: int = 1

    @property
    def ddl(self) -> str:
        return f"{self.name} {self.type}{' NOT NULL' if self.not_null else ''}"


@dataclass(frozen=True)
class StateTable:
    """One entity kind's state: the view `name` over `name_hot` and `name_cold`, with `columns`
    in table order. The fold's Polars schema of the kind is derived from these columns
    (metrics.fold), and the migrations create and extend the tables from them."""

    name: str
    columns: tuple[StateColumn, ...]

    def create_hot(self) -> str:
        """SQL: the hot table as the first migration created it."""
        listed = ", ".join(c.ddl for c in self.columns if c.since == 1)
        return f"CREATE TABLE {self.name}_hot ({listed})"

    def added_by(self, migration: int) -> list[str]:
        """SQL: add the columns `migration` added, to the hot and the cold table."""
        return [
            f"ALTER TABLE {self.name}_{part} ADD COLUMN {column.ddl}"
            for part in ("hot", "cold")
            for column in self.columns
            if column.since == migration
        ]


_KEY = (
    StateColumn("source", "VARCHAR", not_null=True),
    StateColumn("id", "VARCHAR", not_null=True),
)
_VERSION = (StateColumn("v_updated_at", "TIMESTAMPTZ"), StateColumn("v_seq", "BIGINT"))
_CHANGED = StateColumn("changed_seq", "BIGINT", not_null=True)

ORDER_STATE = StateTable(
    ORDERS,
    (
        *_KEY,
        StateColumn("has_version", "BOOLEAN", not_null=True),
        *_VERSION,
        StateColumn("created_at", "TIMESTAMPTZ"),
        StateColumn("currency", "VARCHAR"),
        StateColumn("gross_sales", MONEY_TYPE),
        StateColumn("discounts", MONEY_TYPE),
        StateColumn("test", "BOOLEAN"),
        StateColumn("cancelled", "BOOLEAN"),
        StateColumn("deleted", "BOOLEAN", not_null=True),
        StateColumn("cart_token", "VARCHAR"),
        StateColumn("checkout_token", "VARCHAR"),
        _CHANGED,
        # The time and event_seq of the latest deletion or restore (see migration 3).
        StateColumn("d_at", "TIMESTAMPTZ", since=3),
        StateColumn("d_seq", "BIGINT", since=3),
    ),
)
REFUND_STATE = StateTable(
    REFUNDS,
    (
        *_KEY,
        StateColumn("order_id", "VARCHAR", not_null=True),
        *_VERSION,
        StateColumn("created_at", "TIMESTAMPTZ"),
        StateColumn("currency", "VARCHAR"),
        StateColumn("amount", MONEY_TYPE),
        StateColumn("counted", "BOOLEAN", not_null=True),
        StateColumn("counted_currency", "VARCHAR"),
        _CHANGED,
    ),
)
CHECKOUT_STATE = StateTable(
    CHECKOUTS,
    (
        *_KEY,
        StateColumn("seen", "BOOLEAN", not_null=True),
        *_VERSION,
        StateColumn("created_at", "TIMESTAMPTZ"),
        StateColumn("last_activity", "TIMESTAMPTZ"),
        StateColumn("cart_token", "VARCHAR"),
        StateColumn("platform_abandoned", "BOOLEAN", not_null=True),
        StateColumn("platform_completed", "BOOLEAN", not_null=True),
        StateColumn("order_refs", "INTEGER", not_null=True),
        StateColumn("fate", "VARCHAR"),
        _CHANGED,
    ),
)
CART_STATE = StateTable(
    CARTS,
    (
        *_KEY,
        StateColumn("seen", "BOOLEAN", not_null=True),
        *_VERSION,
        StateColumn("created_at", "TIMESTAMPTZ"),
        StateColumn("last_activity", "TIMESTAMPTZ"),
        StateColumn("platform_abandoned", "BOOLEAN", not_null=True),
        StateColumn("platform_converted", "BOOLEAN", not_null=True),
        StateColumn("order_refs", "INTEGER", not_null=True),
        StateColumn("checkout_refs", "INTEGER", not_null=True),
        StateColumn("fate", "VARCHAR"),
        _CHANGED,
    ),
)
#: In the order the first migration created them.
STATE_TABLES = (ORDER_STATE, REFUND_STATE, CHECKOUT_STATE, CART_STATE)


def _value_columns(log: ChangeLog) -> str:
    return ", ".join(f"{name} {kind} NOT NULL" for name, kind in log.values)


METRICS_MIGRATIONS: list[list[str]] = [
    [
        *[table.create_hot() for table in STATE_TABLES],
        f"""
        CREATE TABLE {SALES_DELTAS} (
            source VARCHAR NOT NULL, currency VARCHAR NOT NULL, minute TIMESTAMPTZ NOT NULL,
            {_value_columns(SALES_LOG)},
            changed_seq BIGINT NOT NULL
        )
        """,
        f"""
        CREATE TABLE {FUNNEL_DELTAS} (
            source VARCHAR NOT NULL, minute TIMESTAMPTZ NOT NULL,
            {_value_columns(FUNNEL_LOG)},
            changed_seq BIGINT NOT NULL
        )
        """,
        *[f"CREATE VIEW {log.view} AS {log.sums()}" for log in CHANGE_LOGS],
        f"""
        CREATE TABLE {CURSOR} (
            id INTEGER PRIMARY KEY,
            event_seq BIGINT NOT NULL,
            fold_seq BIGINT NOT NULL,
            evaluated_at TIMESTAMPTZ,
            watermark_received_at TIMESTAMPTZ,
            folded_at TIMESTAMPTZ
        )
        """,
        f"INSERT INTO {CURSOR} VALUES (1, 0, 0, NULL, NULL, NULL)",
        *[
            statement
            for table in (state.name for state in STATE_TABLES)
            for statement in (
                f"CREATE TABLE {table}_cold AS SELECT * FROM {table}_hot LIMIT 0",
                f"CREATE VIEW {table} AS SELECT * FROM {table}_hot "
                f"UNION ALL SELECT * FROM {table}_cold",
            )
        ],
    ],
    # 2: the state tables are written every few seconds, not with every fold; the cursor says
    # which events and fold they reflect (until now: every fold's).
    [
        f"ALTER TABLE {CURSOR} ADD COLUMN state_event_seq BIGINT NOT NULL DEFAULT 0",
        f"ALTER TABLE {CURSOR} ADD COLUMN state_fold_seq BIGINT NOT NULL DEFAULT 0",
        f"ALTER TABLE {CURSOR} ADD COLUMN state_evaluated_at TIMESTAMPTZ",
        f"ALTER TABLE {CURSOR} ADD COLUMN state_watermark_received_at TIMESTAMPTZ",
        f"UPDATE {CURSOR} SET state_event_seq = event_seq, state_fold_seq = fold_seq, "
        "state_evaluated_at = evaluated_at, state_watermark_received_at = watermark_received_at",
    ],
    # 3: an order's deletion can be undone (WooCommerce's trash): `deleted` is what the latest
    # deletion or restore says, `d_at`/`d_seq` the time and event_seq of that event (NULL for
    # rows folded before: their deletion stands until a restore).
    [
        *ORDER_STATE.added_by(3),
        f"CREATE OR REPLACE VIEW {ORDERS} AS SELECT * FROM {ORDERS}_hot "
        f"UNION ALL SELECT * FROM {ORDERS}_cold",
    ],
    # 4: the history of the figures. Every change row names its cause; `metrics_folds` dates
    # every fold. Changes folded before this version are dated at the last fold before it.
    [
        f"ALTER TABLE {SALES_DELTAS} ADD COLUMN cause VARCHAR DEFAULT 'delivery'",
        f"ALTER TABLE {FUNNEL_DELTAS} ADD COLUMN cause VARCHAR DEFAULT 'delivery'",
        f"""
        CREATE TABLE {FOLDS} (
            fold_seq BIGINT NOT NULL,
            evaluated_at TIMESTAMPTZ NOT NULL,
            watermark_received_at TIMESTAMPTZ,
            event_seq BIGINT NOT NULL
        )
        """,
        f"""
        INSERT INTO {FOLDS}
        SELECT f.fold_seq, c.evaluated_at, c.watermark_received_at, c.event_seq
        FROM (
            SELECT changed_seq AS fold_seq FROM {SALES_DELTAS}
            UNION SELECT changed_seq FROM {FUNNEL_DELTAS}
            UNION SELECT fold_seq FROM {CURSOR}
        ) f CROSS JOIN {CURSOR} c
        WHERE c.evaluated_at IS NOT NULL
        """,
    ],
]

METRICS_SCHEMA = Schema("metrics", METRICS_MIGRATIONS)
