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

from ingest.storage.schema import MONEY_TYPE, Schema

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

FUNNEL_COUNTS = (
    "carts_created",
    "carts_converted",
    "carts_abandoned",
    "carts_open",
    "checkouts_started",
    "checkouts_completed",
    "checkouts_abandoned",
    "checkouts_open",
)
#: Per change log: its bucket key and its additive values with their sum type.
_CHANGE_LOGS: dict[str, tuple[tuple[str, ...], tuple[tuple[str, str], ...]]] = {
    SALES_DELTAS: (
        ("source", "currency", "minute"),
        (
            ("orders", "BIGINT"),
            ("gross_sales", SUM_TYPE),
            ("discounts", SUM_TYPE),
            ("returns", SUM_TYPE),
        ),
    ),
    FUNNEL_DELTAS: (("source", "minute"), tuple((name, "BIGINT") for name in FUNNEL_COUNTS)),
}


def bucket_key(deltas: str) -> tuple[str, ...]:
    """The columns that name a bucket of the change log `deltas`."""
    return _CHANGE_LOGS[deltas][0]


def bucket_values(deltas: str) -> tuple[str, ...]:
    """The additive columns of the change log `deltas`, in table order."""
    return tuple(name for name, _ in _CHANGE_LOGS[deltas][1])


def bucket_sums(deltas: str, upto_fold: int) -> str:
    """SQL: per-minute sums of the change log `deltas` over the folds up to `upto_fold` — the
    columns of its `*_minute` view, as of that fold (each change row carries its fold)."""
    key, values = _CHANGE_LOGS[deltas]
    keys = ", ".join(key)
    sums = ", ".join(f"sum({name})::{kind} AS {name}" for name, kind in values)
    return (
        f"SELECT {keys}, {sums}, max(changed_seq) AS changed_seq FROM {deltas} "
        f"WHERE changed_seq <= {int(upto_fold)} GROUP BY {keys}"
    )


_VERSION = "v_updated_at TIMESTAMPTZ, v_seq BIGINT"

METRICS_MIGRATIONS: list[list[str]] = [
    [
        f"""
        CREATE TABLE {ORDERS}_hot (
            source VARCHAR NOT NULL, id VARCHAR NOT NULL,
            has_version BOOLEAN NOT NULL, {_VERSION},
            created_at TIMESTAMPTZ, currency VARCHAR,
            gross_sales {MONEY_TYPE}, discounts {MONEY_TYPE},
            test BOOLEAN, cancelled BOOLEAN, deleted BOOLEAN NOT NULL,
            cart_token VARCHAR, checkout_token VARCHAR,
            changed_seq BIGINT NOT NULL
        )
        """,
        f"""
        CREATE TABLE {REFUNDS}_hot (
            source VARCHAR NOT NULL, id VARCHAR NOT NULL, order_id VARCHAR NOT NULL,
            {_VERSION},
            created_at TIMESTAMPTZ, currency VARCHAR, amount {MONEY_TYPE},
            counted BOOLEAN NOT NULL, counted_currency VARCHAR,
            changed_seq BIGINT NOT NULL
        )
        """,
        f"""
        CREATE TABLE {CHECKOUTS}_hot (
            source VARCHAR NOT NULL, id VARCHAR NOT NULL,
            seen BOOLEAN NOT NULL, {_VERSION},
            created_at TIMESTAMPTZ, last_activity TIMESTAMPTZ, cart_token VARCHAR,
            platform_abandoned BOOLEAN NOT NULL, platform_completed BOOLEAN NOT NULL,
            order_refs INTEGER NOT NULL, fate VARCHAR,
            changed_seq BIGINT NOT NULL
        )
        """,
        f"""
        CREATE TABLE {CARTS}_hot (
            source VARCHAR NOT NULL, id VARCHAR NOT NULL,
            seen BOOLEAN NOT NULL, {_VERSION},
            created_at TIMESTAMPTZ, last_activity TIMESTAMPTZ,
            platform_abandoned BOOLEAN NOT NULL, platform_converted BOOLEAN NOT NULL,
            order_refs INTEGER NOT NULL, checkout_refs INTEGER NOT NULL, fate VARCHAR,
            changed_seq BIGINT NOT NULL
        )
        """,
        f"""
        CREATE TABLE {SALES_DELTAS} (
            source VARCHAR NOT NULL, currency VARCHAR NOT NULL, minute TIMESTAMPTZ NOT NULL,
            orders BIGINT NOT NULL, gross_sales {SUM_TYPE} NOT NULL,
            discounts {SUM_TYPE} NOT NULL, returns {SUM_TYPE} NOT NULL,
            changed_seq BIGINT NOT NULL
        )
        """,
        f"""
        CREATE TABLE {FUNNEL_DELTAS} (
            source VARCHAR NOT NULL, minute TIMESTAMPTZ NOT NULL,
            carts_created BIGINT NOT NULL, carts_converted BIGINT NOT NULL,
            carts_abandoned BIGINT NOT NULL, carts_open BIGINT NOT NULL,
            checkouts_started BIGINT NOT NULL, checkouts_completed BIGINT NOT NULL,
            checkouts_abandoned BIGINT NOT NULL, checkouts_open BIGINT NOT NULL,
            changed_seq BIGINT NOT NULL
        )
        """,
        f"""
        CREATE VIEW {SALES} AS
        SELECT source, currency, minute, sum(orders)::BIGINT AS orders,
               sum(gross_sales)::{SUM_TYPE} AS gross_sales,
               sum(discounts)::{SUM_TYPE} AS discounts, sum(returns)::{SUM_TYPE} AS returns,
               max(changed_seq) AS changed_seq
        FROM {SALES_DELTAS} GROUP BY source, currency, minute
        """,
        f"""
        CREATE VIEW {FUNNEL} AS
        SELECT source, minute,
               sum(carts_created)::BIGINT AS carts_created,
               sum(carts_converted)::BIGINT AS carts_converted,
               sum(carts_abandoned)::BIGINT AS carts_abandoned,
               sum(carts_open)::BIGINT AS carts_open,
               sum(checkouts_started)::BIGINT AS checkouts_started,
               sum(checkouts_completed)::BIGINT AS checkouts_completed,
               sum(checkouts_abandoned)::BIGINT AS checkouts_abandoned,
               sum(checkouts_open)::BIGINT AS checkouts_open,
               max(changed_seq) AS changed_seq
        FROM {FUNNEL_DELTAS} GROUP BY source, minute
        """,
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
            for table in (ORDERS, REFUNDS, CHECKOUTS, CARTS)
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
        *[
            f"ALTER TABLE {ORDERS}_{part} ADD COLUMN {column}"
            for part in ("hot", "cold")
            for column in ("d_at TIMESTAMPTZ", "d_seq BIGINT")
        ],
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
