"""The views analysts query in the catalog: SQL templates over the published datasets.

`{dataset}` in a template stands for the dataset's files (`Dataset.source_sql`); the catalog
(`shoppulse.publish.catalog`) fills them in. docs/sql.md documents every view and column.
"""

from __future__ import annotations

from metrics.definitions import FUNNEL_COUNTS
from shoppulse.money_sql import aov_sql, minor_units_sql


def _utc(column: str) -> str:
    """`column` (TIMESTAMPTZ) as a UTC wall-clock TIMESTAMP, whatever the session's TimeZone."""
    return f"timezone('UTC', {column})"


def _bucket(grain: str) -> str:
    if grain == "day":
        return f"CAST({_utc('minute')} AS DATE) AS day"
    return f"timezone('UTC', date_trunc('hour', {_utc('minute')})) AS hour"


def _ratio(numerator: str, denominator: str) -> str:
    return f"CASE WHEN {denominator} = 0 THEN NULL ELSE {numerator} / {denominator} END"


def _sales_view(grain: str) -> str:
    if grain == "minute":
        return (
            "SELECT source, NULLIF(currency, '') AS currency, minute, orders, gross_sales, "
            "discounts, returns, gross_sales - discounts - returns AS net_sales, "
            f"{aov_sql('gross_sales', 'discounts', 'orders')} AS aov FROM {{sales_minute}}"
        )
    key = grain
    return (
        f"SELECT source, currency, {key}, orders, gross_sales, discounts, returns, "
        "gross_sales - discounts - returns AS net_sales, "
        f"{aov_sql('gross_sales', 'discounts', 'orders')} AS aov FROM ("
        f"SELECT source, NULLIF(currency, '') AS currency, {_bucket(grain)}, "
        "CAST(sum(orders) AS BIGINT) AS orders, CAST(sum(gross_sales) AS DECIMAL(38,4)) AS "
        "gross_sales, CAST(sum(discounts) AS DECIMAL(38,4)) AS discounts, "
        "CAST(sum(returns) AS DECIMAL(38,4)) AS returns "
        f"FROM {{sales_minute}} GROUP BY ALL)"
    )


def _funnel_view(grain: str) -> str:
    rates = (
        f"{_ratio('carts_converted', 'carts_created')} AS cart_conversion_rate, "
        f"{_ratio('carts_abandoned', 'carts_created')} AS cart_abandonment_rate, "
        f"{_ratio('checkouts_completed', 'checkouts_started')} AS checkout_conversion_rate, "
        f"{_ratio('checkouts_abandoned', 'checkouts_started')} AS checkout_abandonment_rate"
    )
    counts = ", ".join(FUNNEL_COUNTS)
    if grain == "minute":
        return f"SELECT source, minute, {counts}, {rates} FROM {{funnel_minute}}"
    sums = ", ".join(f"CAST(sum({c}) AS BIGINT) AS {c}" for c in FUNNEL_COUNTS)
    return (
        f"SELECT source, {grain}, {counts}, {rates} FROM ("
        f"SELECT source, {_bucket(grain)}, {sums} FROM {{funnel_minute}} GROUP BY ALL)"
    )


_COUNTED_ORDER = (
    "(created_at IS NOT NULL AND NOT coalesce(test, false) AND NOT deleted "
    "AND NOT coalesce(cancelled, false))"
)

#: The views analysts query, in creation order. `{dataset}` stands for the dataset's files.
VIEWS: dict[str, str] = {
    "events": "SELECT * FROM {events}",
    "deliveries": (
        "SELECT d.delivery_seq, d.source, d.delivery_id, d.topic, d.received_at, "
        "coalesce(o.status, d.status) AS status, "
        "CASE WHEN o.delivery_seq IS NULL THEN d.reason ELSE o.reason END AS reason, "
        "coalesce(o.event_count, d.event_count) AS event_count "
        "FROM {deliveries} d LEFT JOIN {delivery_overrides} o ON o.delivery_seq = d.delivery_seq"
    ),
    "quarantine": (
        "SELECT delivery_seq, source, delivery_id, topic, received_at, reason "
        "FROM deliveries WHERE status = 'quarantined'"
    ),
    "orders": f"SELECT * EXCLUDE (lines), {_COUNTED_ORDER} AS counted FROM {{orders}}",
    "order_lines": (
        "SELECT o.source, o.id AS order_id, o.name AS order_name, o.created_at, o.currency, "
        "l.line, l.product_id, l.variant_id, l.sku, l.title, l.quantity, l.unit_price, "
        "CAST(l.unit_price * l.quantity AS DECIMAL(38,4)) AS gross_sales, "
        "l.discount AS line_discount, o.counted, o.test, o.cancelled, o.deleted "
        f"FROM (SELECT *, {_COUNTED_ORDER} AS counted FROM {{orders}}) o, "
        "unnest(o.lines) AS t(l)"
    ),
    "refunds": "SELECT * FROM {refunds}",
    "carts": "SELECT * FROM {carts}",
    "checkouts": "SELECT * FROM {checkouts}",
    "sales_by_minute": _sales_view("minute"),
    "sales_by_hour": _sales_view("hour"),
    "sales_by_day": _sales_view("day"),
    "funnel_by_minute": _funnel_view("minute"),
    "funnel_by_hour": _funnel_view("hour"),
    "funnel_by_day": _funnel_view("day"),
    "aov_by_day": (
        "SELECT day, source, currency, orders, "
        f"{aov_sql('gross_sales', 'discounts', 'orders', 'minor_units')} AS aov, minor_units "
        f"FROM (SELECT *, {minor_units_sql('currency')} AS minor_units FROM sales_by_day "
        "WHERE orders > 0 AND currency IS NOT NULL)"
    ),
    "ingest_counts": "SELECT * FROM {ingest_counts}",
    "metric_history": "SELECT * FROM {metric_changes}",
}
