"""Every metric ShopPulse reports: its name, kind, label and the additive parts it is made of.

The definitions follow docs/metrics.md. Counts and money are sums of the per-minute aggregates;
rates and averages are computed from those sums at read time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MetricKind = Literal["count", "money", "rate", "average"]


@dataclass(frozen=True)
class Metric:
    name: str
    kind: MetricKind
    label: str
    description: str
    numerator: str | None = None
    denominator: str | None = None


_METRICS = [
    Metric(
        "orders",
        "count",
        "Orders",
        "Counted orders (not test, deleted or cancelled), by created time.",
    ),
    Metric(
        "gross_sales",
        "money",
        "Gross sales",
        "Line-item price x quantity before discounts of counted orders.",
    ),
    Metric("discounts", "money", "Discounts", "Order discounts of counted orders."),
    Metric(
        "returns",
        "money",
        "Returns",
        "Refunded line-item amounts of counted orders, by refund time.",
    ),
    Metric("net_sales", "money", "Net sales", "gross_sales - discounts - returns."),
    Metric(
        "aov",
        "average",
        "Average order value",
        "(gross_sales - discounts) / orders.",
        "gross_sales-discounts",
        "orders",
    ),
    Metric("carts_created", "count", "Carts created", "Carts by creation time (a cohort)."),
    Metric(
        "carts_converted",
        "count",
        "Carts converted",
        "Carts of the cohort that an order refers to.",
    ),
    Metric("carts_abandoned", "count", "Carts abandoned", "Carts of the cohort abandoned now."),
    Metric(
        "carts_open", "count", "Carts open", "Carts of the cohort neither converted nor abandoned."
    ),
    Metric(
        "cart_conversion_rate",
        "rate",
        "Cart conversion",
        "carts_converted / carts_created.",
        "carts_converted",
        "carts_created",
    ),
    Metric(
        "cart_abandonment_rate",
        "rate",
        "Cart abandonment",
        "carts_abandoned / carts_created.",
        "carts_abandoned",
        "carts_created",
    ),
    Metric("checkouts_started", "count", "Checkouts started", "Checkouts by creation time."),
    Metric("checkouts_completed", "count", "Checkouts completed", "Checkouts an order completed."),
    Metric("checkouts_abandoned", "count", "Checkouts abandoned", "Checkouts abandoned now."),
    Metric(
        "checkouts_open", "count", "Checkouts open", "Checkouts neither completed nor abandoned."
    ),
    Metric(
        "checkout_conversion_rate",
        "rate",
        "Checkout conversion",
        "checkouts_completed / checkouts_started.",
        "checkouts_completed",
        "checkouts_started",
    ),
    Metric(
        "checkout_abandonment_rate",
        "rate",
        "Checkout abandonment",
        "checkouts_abandoned / checkouts_started.",
        "checkouts_abandoned",
        "checkouts_started",
    ),
]

METRICS: dict[str, Metric] = {metric.name: metric for metric in _METRICS}
MONEY_METRICS = [m.name for m in _METRICS if m.kind == "money"]
FUNNEL_COUNTS = [m.name for m in _METRICS if m.kind == "count" and m.name != "orders"]
