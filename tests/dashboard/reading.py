"""What the page must show, read straight from the service's API (not through the dashboard)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx

from dashboard import formatting as fmt

KPI_LABELS = (
    "Orders",
    "Net sales",
    "AOV",
    "Cart conversion",
    "Cart abandonment",
    "Checkout abandonment",
)


def api_figures(http: httpx.Client, span: timedelta, source: str | None = None) -> dict[str, Any]:
    """`GET /api/v1/metrics` for the window the page shows: `span` up to the current minute."""
    end = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    params = {"from": (end - span).isoformat(), "to": end.isoformat()}
    if source:
        params["source"] = source
    response = http.get("/api/v1/metrics", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def expected_tiles(body: dict[str, Any]) -> dict[str, str]:
    """The six tile values the page must show for these API figures (one currency)."""
    return {
        "Orders": fmt.count(body["orders"]),
        "Net sales": fmt.money(Decimal(body["net_sales"]), body["currency"], code=False),
        "AOV": fmt.money(Decimal(body["aov"]), body["currency"], code=False),
        "Cart conversion": fmt.percent(body["cart_conversion_rate"]),
        "Cart abandonment": fmt.percent(body["cart_abandonment_rate"]),
        "Checkout abandonment": fmt.percent(body["checkout_abandonment_rate"]),
    }


def kpi_tiles(shown: Iterable[tuple[str, str]]) -> dict[str, str]:
    """(label, value) pairs of the page's metrics -> {KPI name: value}.

    Money labels carry the currency: "Net sales (USD)".
    """
    tiles = {}
    for label, value in shown:
        for name in KPI_LABELS:
            if label == name or label.startswith(f"{name} ("):
                tiles[name] = value
    return tiles
