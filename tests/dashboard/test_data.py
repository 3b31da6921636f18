"""The dashboard's data layer against a real service on 127.0.0.1 with real signed deliveries."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from dashboard.data import ReadClient, ServiceUnavailable, load_snapshot
from dashboard.model import RateMeter, Snapshot
from dashboard.time_range import TimeRange
from ingest.quarantine import UNSUBSCRIBE
from tests.dashboard.store import Store, fresh_id, wait_for
from tests.e2e.server import ServiceProcess
from tests.helpers.ports import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

QUARTER = timedelta(minutes=15)


class FakeMonotonic:
    """The rate meter's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def snapshot_when(
    client: ReadClient,
    source: str,
    orders: int,
    meter: RateMeter | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> Snapshot:
    """The snapshot of the last 15 minutes once the service has folded `orders` orders."""
    rate_meter = meter or RateMeter()

    def read() -> Snapshot:
        window = TimeRange.last(QUARTER, datetime.now(UTC))
        return load_snapshot(client, window, source, rate_meter, monotonic=monotonic)

    snapshot: Snapshot = wait_for(read, lambda s: s.current.orders == orders)
    return snapshot


def test_figures_kpis_funnel_and_trend_match_what_the_store_sent(
    service: ServiceProcess, http: httpx.Client
) -> None:
    shop = Store(http, "shop-a")
    now = datetime.now(UTC)
    shop.order("40.00", "0.00", created=now - timedelta(minutes=20))  # the previous 15 minutes
    carts = [fresh_id() for _ in range(4)]
    for token in carts:
        shop.cart(token)
    checkout = fresh_id()
    shop.checkout(checkout, carts[0])
    shop.order("100.00", "10.00", cart_token=carts[0], checkout_token=checkout)
    shop.order("250.50", "0.00", cart_token=carts[1])
    shop.order("49.99", "5.00")

    with ReadClient(service.base_url) as client:
        snapshot = snapshot_when(client, "shop-a", orders=3)

    current, previous = snapshot.current, snapshot.previous
    assert current.source == "shop-a"
    assert (current.orders, previous.orders) == (3, 1)
    usd = current.money("USD")
    assert usd is not None
    assert usd.net_sales == Decimal("385.49")  # 90.00 + 250.50 + 44.99, exact
    orders, net, aov, conversion, abandonment, checkout_abandonment = snapshot.kpis
    assert (orders.value, orders.delta) == (3, 2)
    assert (net.value, net.previous, net.delta) == (
        Decimal("385.49"),
        Decimal("40.00"),
        Decimal("345.49"),
    )
    assert net.currency == "USD"
    assert aov.value == Decimal("128.4967") and aov.previous == Decimal("40.00")
    assert (current.carts_created, current.carts_converted, current.carts_open) == (4, 2, 2)
    assert conversion.value == 0.5 and abandonment.value == 0.0
    assert conversion.provisional  # two carts are still open
    assert (current.checkouts_started, current.checkouts_completed) == (1, 1)
    assert checkout_abandonment.value == 0.0 and not checkout_abandonment.provisional

    trend = snapshot.orders_trend
    assert trend.grain == "minute" and len(trend.points) == 15
    assert sum(int(p.value or 0) for p in trend.points) == 3
    sales = snapshot.sales_trend
    assert {p.currency for p in sales.points} == {"USD"}
    assert sum((p.value for p in sales.points if isinstance(p.value, Decimal)), Decimal(0)) == (
        Decimal("385.49")
    )
    rows = {row.source: row for row in snapshot.sources}
    assert rows["shop-a"].figures.orders == 3 and rows["shop-a"].accepted == 9


def test_health_counts_rate_and_quarantine_reasons(
    service: ServiceProcess, http: httpx.Client
) -> None:
    shop = Store(http, "shop-b")
    monotonic = FakeMonotonic()
    meter = RateMeter()
    with ReadClient(service.base_url) as client:
        first = load_snapshot(
            client, TimeRange.last(QUARTER, datetime.now(UTC)), "shop-b", meter, monotonic=monotonic
        )
        assert first.health.deliveries_per_second is None  # one sample so far

        repeated = fresh_id()
        shop.order("10.00", delivery_id=repeated)
        shop.order("10.00", delivery_id=repeated)  # Shopify retrying: a duplicate
        shop.unusable()
        shop.forged()
        shop.order("20.00")
        monotonic.now += 2.5
        snapshot = snapshot_when(client, "shop-b", orders=2, meter=meter, monotonic=monotonic)

        health = snapshot.health
        outcomes = (health.accepted, health.duplicate, health.quarantined, health.rejected)
        assert outcomes == (2, 1, 1, 1)
        assert health.deliveries_per_second == pytest.approx(5 / 2.5)
        assert dict(health.rejected_by_reason) == {"invalid_signature": 1}
        assert health.writer_healthy and health.queue_depth >= 0
        assert health.freshness_seconds is not None and health.freshness_seconds < 30
        assert health.events_waiting == 0 and health.pipeline == "caught_up"
        stored = http.get("/api/v1/ingest/stats").json()["events_stored_through"]
        assert stored == snapshot.current.events_folded_through  # every stored event counted
        assert health.last_delivery_at is not None

        quarantined = client.quarantine(limit=5, source="shop-b")
        assert [(q.source, q.topic, q.reason, q.next_step) for q in quarantined] == [
            ("shop-b", "products/update", "unknown topic 'products/update'", UNSUBSCRIBE)
        ]
        assert client.quarantine(limit=5, source="shop-c") == []


def test_quarantine_endpoint_lists_the_newest_first_without_bodies(
    service: ServiceProcess, http: httpx.Client
) -> None:
    shop = Store(http, "shop-c")
    ids = [shop.unusable().json()["delivery_id"] for _ in range(3)]
    answer = http.get("/api/v1/ingest/quarantine", params={"limit": 2, "source": "shop-c"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["limit"] == 2 and body["source"] == "shop-c"
    assert [d["delivery_id"] for d in body["deliveries"]] == ids[:0:-1]
    assert set(body["deliveries"][0]) == {
        "source",
        "delivery_id",
        "topic",
        "received_at",
        "reason",
        "next",
    }
    assert body["deliveries"][0]["next"] == UNSUBSCRIBE  # a topic the store need not send
    assert datetime.fromisoformat(body["deliveries"][0]["received_at"]).utcoffset() == timedelta(0)
    bad = http.get("/api/v1/ingest/quarantine", params={"limit": 0})
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "invalid_request"


def test_an_unreachable_service_is_one_clear_error_quickly() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with ReadClient(url) as client, pytest.raises(ServiceUnavailable) as caught:
        load_snapshot(client, TimeRange.last(QUARTER, datetime.now(UTC)), None, RateMeter())
    assert time.monotonic() - started < 3
    assert f"cannot reach the service at {url}" in str(caught.value)
    assert not caught.value.reachable
