"""The full-recompute reference: every aggregate from the stored events, in plain DuckDB SQL.

Written independently of the incremental code (which uses Polars): it states the definitions
once more, directly, so that comparing the two catches a mistake in either.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb

from ingest.storage.schema import EVENTS
from metrics.schema import CURSOR, FUNNEL, SALES

_ENTITIES = f"""
WITH ev AS (
    SELECT *, coalesce(updated_at, TIMESTAMPTZ '1900-01-01 00:00:00+00') AS vkey
    FROM {EVENTS} WHERE event_seq <= $upto
),
order_latest AS (
    SELECT * FROM ev WHERE kind = 'order' AND NOT deleted AND action <> 'restore'
    QUALIFY row_number() OVER (
        PARTITION BY source, entity_id ORDER BY vkey DESC, event_seq DESC) = 1
),
order_toggle AS (
    -- the latest deletion or restore out of a trash, by its time (a deletion notice without
    -- updated_at: when it arrived), then by delivery
    SELECT source, entity_id, deleted FROM ev
    WHERE kind = 'order' AND (deleted OR action = 'restore')
    QUALIFY row_number() OVER (PARTITION BY source, entity_id
                               ORDER BY coalesce(updated_at, received_at) DESC, event_seq DESC) = 1
),
order_all AS (
    SELECT a.source, a.entity_id, coalesce(t.deleted, false) AS deleted, a.created_at
    FROM (SELECT source, entity_id, min(created_at) AS created_at
          FROM ev WHERE kind = 'order' GROUP BY ALL) a
    LEFT JOIN order_toggle t USING (source, entity_id)
),
orders AS (
    SELECT o.source, o.entity_id AS id, d.created_at, o.currency, o.gross_sales, o.discounts,
           o.test, o.cart_token, o.checkout_token,
           (NOT o.test AND NOT o.cancelled AND NOT d.deleted AND d.created_at IS NOT NULL) AS counts
    FROM order_latest o JOIN order_all d USING (source, entity_id)
),
refunds AS (
    SELECT * FROM ev WHERE kind = 'refund'
    QUALIFY row_number() OVER (
        PARTITION BY source, entity_id ORDER BY vkey DESC, event_seq DESC) = 1
),
checkout_events AS (SELECT * FROM ev WHERE kind = 'checkout' AND NOT deleted),
checkouts AS (
    SELECT l.source, l.entity_id AS id, a.created_at, l.cart_token, a.last_activity,
           a.platform_abandoned,
           (a.platform_completed OR EXISTS (
               SELECT 1 FROM orders o WHERE NOT o.test AND o.source = l.source
               AND o.checkout_token = l.entity_id)) AS converted
    FROM (SELECT * FROM checkout_events QUALIFY row_number() OVER (
              PARTITION BY source, entity_id ORDER BY vkey DESC, event_seq DESC) = 1) l
    JOIN (SELECT source, entity_id, max(coalesce(updated_at, created_at)) AS last_activity,
                 min(created_at) AS created_at,
                 bool_or(abandoned) AS platform_abandoned, bool_or(completed) AS platform_completed
          FROM checkout_events GROUP BY ALL) a USING (source, entity_id)
),
cart_events AS (SELECT * FROM ev WHERE kind = 'cart' AND NOT deleted),
carts AS (
    SELECT l.source, l.entity_id AS id, a.created_at, a.last_activity, a.platform_abandoned,
           (a.platform_converted
            OR EXISTS (SELECT 1 FROM orders o WHERE NOT o.test AND o.source = l.source
                       AND o.cart_token = l.entity_id)
            OR EXISTS (SELECT 1 FROM checkouts c WHERE c.converted AND c.source = l.source
                       AND c.cart_token = l.entity_id)) AS converted
    FROM (SELECT * FROM cart_events QUALIFY row_number() OVER (
              PARTITION BY source, entity_id ORDER BY vkey DESC, event_seq DESC) = 1) l
    JOIN (SELECT source, entity_id, max(coalesce(updated_at, created_at)) AS last_activity,
                 min(created_at) AS created_at, bool_or(abandoned) AS platform_abandoned,
                 bool_or(completed OR order_id IS NOT NULL) AS platform_converted
          FROM cart_events GROUP BY ALL) a USING (source, entity_id)
)
"""

_FATE = """
CASE WHEN converted THEN 'converted'
     WHEN platform_abandoned OR last_activity <= $now::TIMESTAMPTZ - ${timeout}::INTERVAL
     THEN 'abandoned' ELSE 'open' END
"""

SALES_SQL = (
    _ENTITIES
    + """
, sales AS (
    SELECT source, coalesce(currency, '') AS currency, date_trunc('minute', created_at) AS minute,
           1 AS orders, coalesce(gross_sales, 0) AS gross_sales,
           coalesce(discounts, 0) AS discounts, 0 AS returns
    FROM orders WHERE counts
    UNION ALL
    SELECT r.source, coalesce(r.currency, o.currency, '') AS currency,
           date_trunc('minute', r.created_at) AS minute, 0, 0, 0, coalesce(r.refund_amount, 0)
    FROM refunds r JOIN orders o ON o.source = r.source AND o.id = coalesce(r.order_id, '')
    WHERE o.counts AND r.created_at IS NOT NULL
)
SELECT source, currency, minute, sum(orders)::BIGINT AS orders,
       sum(gross_sales)::DECIMAL(38,4) AS gross_sales, sum(discounts)::DECIMAL(38,4) AS discounts,
       sum(returns)::DECIMAL(38,4) AS returns
FROM sales GROUP BY ALL
"""
)

FUNNEL_SQL = (
    _ENTITIES
    + f"""
, funnel AS (
    SELECT source, date_trunc('minute', created_at) AS minute, 'cart' AS kind,
           {_FATE.replace("{timeout}", "cart_timeout")} AS fate
    FROM carts WHERE created_at IS NOT NULL
    UNION ALL
    SELECT source, date_trunc('minute', created_at), 'checkout',
           {_FATE.replace("{timeout}", "checkout_timeout")}
    FROM checkouts WHERE created_at IS NOT NULL
)
SELECT source, minute,
    count(*) FILTER (kind = 'cart') AS carts_created,
    count(*) FILTER (kind = 'cart' AND fate = 'converted') AS carts_converted,
    count(*) FILTER (kind = 'cart' AND fate = 'abandoned') AS carts_abandoned,
    count(*) FILTER (kind = 'cart' AND fate = 'open') AS carts_open,
    count(*) FILTER (kind = 'checkout') AS checkouts_started,
    count(*) FILTER (kind = 'checkout' AND fate = 'converted') AS checkouts_completed,
    count(*) FILTER (kind = 'checkout' AND fate = 'abandoned') AS checkouts_abandoned,
    count(*) FILTER (kind = 'checkout' AND fate = 'open') AS checkouts_open
FROM funnel GROUP BY ALL
"""
)

_SALES_COLUMNS = "source, currency, minute, orders, gross_sales, discounts, returns"
_FUNNEL_COLUMNS = (
    "source, minute, carts_created, carts_converted, carts_abandoned, carts_open, "
    "checkouts_started, checkouts_completed, checkouts_abandoned, checkouts_open"
)


@dataclass(frozen=True)
class Difference:
    table: str
    side: str  # "incremental" (only there) or "recompute" (only there)
    row: tuple[object, ...]


def check(
    con: duckdb.DuckDBPyConnection,
    *,
    cart_abandon_after: timedelta,
    checkout_abandon_after: timedelta,
    now: datetime | None = None,
) -> list[Difference]:
    """Differences between the incremental aggregates and a full recompute.

    The recompute covers the events the incremental state has folded (up to its cursor) at the
    time of its last evaluation, unless `now` is given.
    """
    cursor = con.execute(f"SELECT event_seq, evaluated_at FROM {CURSOR}").fetchall()[0]
    assert cursor is not None
    upto, evaluated_at = int(cursor[0]), cursor[1]
    at = now or evaluated_at
    if at is None:
        return []
    params = {
        "upto": upto,
        "now": at,
        "cart_timeout": cart_abandon_after,
        "checkout_timeout": checkout_abandon_after,
    }
    differences: list[Difference] = []
    for table, sql, columns, values in (
        (
            SALES,
            SALES_SQL,
            _SALES_COLUMNS,
            "orders <> 0 OR gross_sales <> 0 OR discounts <> 0 OR returns <> 0",
        ),
        (
            FUNNEL,
            FUNNEL_SQL,
            _FUNNEL_COLUMNS,
            "carts_created <> 0 OR checkouts_started <> 0 "
            "OR carts_converted <> 0 OR carts_abandoned <> 0 OR carts_open <> 0 "
            "OR checkouts_completed <> 0 OR checkouts_abandoned <> 0 OR checkouts_open <> 0",
        ),
    ):
        used = {k: v for k, v in params.items() if f"${k}" in sql}
        query = f"""
            WITH recomputed AS ({sql.strip()}),
            incremental AS (SELECT {columns} FROM {table} WHERE {values}),
            reference AS (SELECT {columns} FROM recomputed WHERE {values})
            SELECT 'incremental' AS side, * FROM (SELECT * FROM incremental EXCEPT ALL
                                                  SELECT * FROM reference)
            UNION ALL
            SELECT 'recompute', * FROM (SELECT * FROM reference EXCEPT ALL
                                        SELECT * FROM incremental)
        """
        for row in con.execute(query, used).fetchall():
            differences.append(Difference(table, str(row[0]), tuple(row[1:])))
    return differences
