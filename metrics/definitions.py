"""Every metric ShopPulse reports: its name, kind, label, definition, formula and version, and
the additive parts it is made of.

The definitions follow docs/metrics.md. Counts and money are sums of the per-minute aggregates;
rates and averages are computed from those sums at read time.

Definitions are versioned: a change of what a metric means (not of how it is computed) raises its
`version` and adds an entry to the changelog of docs/metrics.md, and every figure the API
answers names the versions it was computed with.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from typing import Literal

MetricKind = Literal["count", "money", "rate", "average"]
#: The bucket sizes a metric's series is reported in.
Grain = Literal["minute", "hour", "day"]


@dataclass(frozen=True)
class Metric:
    name: str
    kind: MetricKind
    label: str
    description: str
    numerator: str | None = None
    denominator: str | None = None
    _: KW_ONLY
    formula: str
    version: int = 1


_METRICS = [
    Metric(
        "orders",
        "count",
        "Orders",
        "Counted orders (not test, deleted or cancelled), by created time.",
        formula="count(counted orders) by created_at",
    ),
    Metric(
        "gross_sales",
        "money",
        "Gross sales",
        "Line-item price x quantity before discounts of counted orders.",
        formula="sum(total_line_items_price) of counted orders by created_at",
    ),
    Metric(
        "discounts",
        "money",
        "Discounts",
        "Order discounts of counted orders.",
        formula="sum(total_discounts) of counted orders by created_at",
    ),
    Metric(
        "returns",
        "money",
        "Returns",
        "Refunded line-item amounts of counted orders, by refund time.",
        formula="sum(refunded line items before tax) of refunds of counted orders, by refund "
        "created_at",
    ),
    Metric(
        "net_sales",
        "money",
        "Net sales",
        "Sales after discounts and returns: what counted orders brought in, less what was "
        "refunded, by order time (returns by refund time).",
        formula="gross_sales - discounts - returns",
    ),
    Metric(
        "aov",
        "average",
        "Average order value",
        "What a counted order brings on average after discounts; refunds do not change it.",
        "gross_sales-discounts",
        "orders",
        formula="(gross_sales - discounts) / orders",
    ),
    Metric(
        "carts_created",
        "count",
        "Carts created",
        "Carts by creation time (a cohort).",
        formula="count(carts) by created_at",
    ),
    Metric(
        "carts_converted",
        "count",
        "Carts converted",
        "Carts of the cohort that an order refers to.",
        formula="count(carts with fate converted) by created_at",
    ),
    Metric(
        "carts_abandoned",
        "count",
        "Carts abandoned",
        "Carts of the cohort abandoned now.",
        formula="count(carts with fate abandoned) by created_at",
    ),
    Metric(
        "carts_open",
        "count",
        "Carts open",
        "Carts of the cohort neither converted nor abandoned.",
        formula="count(carts with fate open) by created_at",
    ),
    Metric(
        "cart_conversion_rate",
        "rate",
        "Cart conversion",
        "Share of the carts created in the window that an order converted.",
        "carts_converted",
        "carts_created",
        formula="carts_converted / carts_created",
    ),
    Metric(
        "cart_abandonment_rate",
        "rate",
        "Cart abandonment",
        "Share of the carts created in the window that are abandoned now.",
        "carts_abandoned",
        "carts_created",
        formula="carts_abandoned / carts_created",
    ),
    Metric(
        "checkouts_started",
        "count",
        "Checkouts started",
        "Checkouts by creation time.",
        formula="count(checkouts) by created_at",
    ),
    Metric(
        "checkouts_completed",
        "count",
        "Checkouts completed",
        "Checkouts an order completed.",
        formula="count(checkouts with fate completed) by created_at",
    ),
    Metric(
        "checkouts_abandoned",
        "count",
        "Checkouts abandoned",
        "Checkouts abandoned now.",
        formula="count(checkouts with fate abandoned) by created_at",
    ),
    Metric(
        "checkouts_open",
        "count",
        "Checkouts open",
        "Checkouts neither completed nor abandoned.",
        formula="count(checkouts with fate open) by created_at",
    ),
    Metric(
        "checkout_conversion_rate",
        "rate",
        "Checkout conversion",
        "Share of the checkouts started in the window that an order completed.",
        "checkouts_completed",
        "checkouts_started",
        formula="checkouts_completed / checkouts_started",
    ),
    Metric(
        "checkout_abandonment_rate",
        "rate",
        "Checkout abandonment",
        "Share of the checkouts started in the window that are abandoned now.",
        "checkouts_abandoned",
        "checkouts_started",
        formula="checkouts_abandoned / checkouts_started",
    ),
]

METRICS: dict[str, Metric] = {metric.name: metric for metric in _METRICS}
#: The funnel's counts: the additive columns of its change log (metrics.schema), in this order.
FUNNEL_COUNTS = tuple(m.name for m in _METRICS if m.kind == "count" and m.name != "orders")


def definition_versions() -> dict[str, int]:
    """The version of every metric's definition, by name."""
    return dict(_VERSIONS)


_VERSIONS = {metric.name: metric.version for metric in _METRICS}
