"""The trend charts: straight segments, and the bucket still open never drawn as a fall."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from dashboard.charts import OPEN_NOTE, orders_chart, sales_chart
from dashboard.model import Point, Trend
from dashboard.time_range import TimeRange

NOW = datetime(2026, 3, 14, 15, 9, 30, tzinfo=UTC)
WINDOW = TimeRange.last(timedelta(minutes=3), NOW)  # 15:07, 15:08 and 15:09 (open)


def trend(metric: str, values: list[Any]) -> Trend:
    currency = "USD" if metric == "net_sales" else None
    points = tuple(
        Point(bucket, value, currency)
        for bucket, value in zip(WINDOW.buckets(), values, strict=True)
    )
    return Trend(metric, "minute", points)


def rows(spec: dict[str, Any]) -> list[dict[str, Any]]:
    datasets: dict[str, list[dict[str, Any]]] = spec["datasets"]
    return next(iter(datasets.values()))


def test_only_the_current_minute_is_open() -> None:
    minutes = trend("orders", [4, 5, 1])
    assert [minutes.is_open(b, NOW) for b in WINDOW.buckets()] == [False, False, True]
    assert not minutes.is_open(WINDOW.buckets()[-1], WINDOW.end)  # once the minute is over


def test_the_open_bar_is_lighter_and_says_so_far() -> None:
    spec = orders_chart(trend("orders", [4, 5, 1]), NOW).to_dict()
    assert [(r["open"], r["shown"]) for r in rows(spec)] == [
        (False, "4"),
        (False, "5"),
        (True, f"1, {OPEN_NOTE}"),
    ]
    colour = spec["encoding"]["color"]
    assert colour["condition"]["test"] == "datum.open"
    assert colour["condition"]["value"] != colour["value"]


def test_the_sales_line_is_straight_and_leaves_the_open_minute_apart() -> None:
    values = [Decimal("10.00"), Decimal("30.00"), Decimal("1.00")]
    spec = sales_chart(trend("net_sales", values), NOW).to_dict()
    line, point = spec["layer"]
    assert line["mark"]["type"] == "line" and line["mark"]["interpolate"] == "linear"
    assert line["transform"] == [{"filter": "(!datum.open)"}]
    assert point["mark"] == {"type": "point", "filled": False, "size": 40}
    assert point["transform"] == [{"filter": "datum.open"}]
    assert [r["shown"] for r in rows(spec)][-1] == f"1.00 USD, {OPEN_NOTE}"
