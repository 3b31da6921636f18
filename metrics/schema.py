"""The metrics engine's tables in the live DuckDB file: entity state, aggregates and the cursor.

Entity state holds each cart, checkout, order and refund as last folded (its latest version and
its fate at the last evaluation); the aggregates hold additive figures per UTC minute. Ratios are
computed at read time. Hour and day figures are sums of minutes.
"""

from __future__ import annotations

from ingest.storage.schema import MONEY_TYPE

ORDERS = "metrics_orders"
REFUNDS = "metrics_refunds"
CARTS = "metrics_carts"
CHECKOUTS = "metrics_checkouts"
SALES = "metrics_sales_minute"
FUNNEL = "metrics_funnel_minute"
CURSOR = "metrics_cursor"

SUM_TYPE = "DECIMAL(38,4)"

_VERSION = "v_updated_at TIMESTAMPTZ, v_seq BIGINT"

METRICS_MIGRATIONS: list[list[str]] = [
    [
        f"""
        CREATE TABLE {ORDERS} (
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
        CREATE TABLE {REFUNDS} (
            source VARCHAR NOT NULL, id VARCHAR NOT NULL, order_id VARCHAR NOT NULL,
            {_VERSION},
            created_at TIMESTAMPTZ, currency VARCHAR, amount {MONEY_TYPE},
            counted BOOLEAN NOT NULL, counted_currency VARCHAR,
            changed_seq BIGINT NOT NULL
        )
        """,
        f"""
        CREATE TABLE {CHECKOUTS} (
            source VARCHAR NOT NULL, id VARCHAR NOT NULL,
            seen BOOLEAN NOT NULL, {_VERSION},
            created_at TIMESTAMPTZ, last_activity TIMESTAMPTZ, cart_token VARCHAR,
            platform_abandoned BOOLEAN NOT NULL, platform_completed BOOLEAN NOT NULL,
            order_refs INTEGER NOT NULL, fate VARCHAR,
            changed_seq BIGINT NOT NULL
        )
        """,
        f"""
        CREATE TABLE {CARTS} (
            source VARCHAR NOT NULL, id VARCHAR NOT NULL,
            seen BOOLEAN NOT NULL, {_VERSION},
            created_at TIMESTAMPTZ, last_activity TIMESTAMPTZ,
            platform_abandoned BOOLEAN NOT NULL, platform_converted BOOLEAN NOT NULL,
            order_refs INTEGER NOT NULL, checkout_refs INTEGER NOT NULL, fate VARCHAR,
            changed_seq BIGINT NOT NULL
        )
        """,
        f"""
        CREATE TABLE {SALES} (
            source VARCHAR NOT NULL, currency VARCHAR NOT NULL, minute TIMESTAMPTZ NOT NULL,
            orders BIGINT NOT NULL, gross_sales {SUM_TYPE} NOT NULL,
            discounts {SUM_TYPE} NOT NULL, returns {SUM_TYPE} NOT NULL,
            changed_seq BIGINT NOT NULL,
            PRIMARY KEY (source, currency, minute)
        )
        """,
        f"""
        CREATE TABLE {FUNNEL} (
            source VARCHAR NOT NULL, minute TIMESTAMPTZ NOT NULL,
            carts_created BIGINT NOT NULL, carts_converted BIGINT NOT NULL,
            carts_abandoned BIGINT NOT NULL, carts_open BIGINT NOT NULL,
            checkouts_started BIGINT NOT NULL, checkouts_completed BIGINT NOT NULL,
            checkouts_abandoned BIGINT NOT NULL, checkouts_open BIGINT NOT NULL,
            changed_seq BIGINT NOT NULL,
            PRIMARY KEY (source, minute)
        )
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
    ],
]
