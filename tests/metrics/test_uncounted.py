"""Stored but not counted: test, cancelled and deleted orders per source in the delivery stats."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient

from tests.conftest import fixture_bytes, signed_post
from tests.helpers.app import figures, service_of
from tests.metrics.shop import WEEK, Shop

T0 = datetime(2025, 12, 31, 9, 0, tzinfo=UTC)  # before the test clock


def test_shopifys_sample_order_is_stored_but_not_counted_and_the_stats_say_why(
    client: TestClient,
) -> None:
    # Shopify's "Send test notification" for orders/create: a test order that is also cancelled.
    sample = fixture_bytes("shopify", "orders_create.json")
    response = signed_post(
        client, "acme", "shopify", sample, topic="orders/create", delivery_id="s"
    )
    assert response.status_code == 200 and response.json()["status"] == "stored"
    shop = Shop(client)
    shop.order("1", T0)
    shop.order("2", T0, test=True)
    shop.order("3", T0)
    shop.delete_order("3")
    assert figures(client, **WEEK)["orders"] == 1
    service_of(client).worker.write_state_now()

    stats = client.get("/api/v1/ingest/stats").json()
    expected = {"orders": 3, "test": 2, "cancelled": 1, "deleted": 1}
    assert stats["sources"]["acme"]["not_counted"] == expected
    assert stats["not_counted"] == expected
    assert stats["sources"]["acme"]["accepted"] == 5


def test_no_orders_no_uncounted(client: TestClient) -> None:
    stats = client.get("/api/v1/ingest/stats").json()
    assert stats["not_counted"] == {"orders": 0, "test": 0, "cancelled": 0, "deleted": 0}
