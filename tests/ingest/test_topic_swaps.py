"""A captured, authentic body re-sent under another topic: the topic must agree with the body.

Shopify and WooCommerce sign only the body, so anyone who captured one delivery can re-send it
with another topic header and a valid signature. Such a delivery is quarantined with the reason
"topic does not match the signed body" and changes no figure. Stripe, BigCommerce and Standard
Webhooks carry the topic inside the signed body: changing it breaks the signature (401).
Everything runs through the real app and DuckDB file.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import duckdb
import orjson
import pytest
from fastapi.testclient import TestClient

from ingest.providers import get_provider
from ingest.providers.base import TOPIC_MISMATCH
from shoppulse.service import create_app
from shoppulse.settings import Settings
from tests.conftest import (
    SECRET,
    FrozenClock,
    fixture_bytes,
    fixture_json,
    make_source,
    signed_post,
)
from tests.helpers.app import service_of

SHOPIFY_ORDER = fixture_bytes("shopify", "orders_create.json")
SHOPIFY_CHECKOUT = fixture_bytes("shopify", "checkouts_create.json")
SHOPIFY_CART = fixture_bytes("shopify", "carts_create.json")
SHOPIFY_REFUND = fixture_bytes("shopify", "refunds_create.json")
WOO_ORDER = fixture_bytes("woocommerce", "order.updated.json")  # completed, counts as an order
#: The WooCommerce fixture's creation day (UTC), for reading its figures.
WOO_DAY = {"from": "2017-03-22T00:00:00Z", "to": "2017-03-23T00:00:00Z"}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One service for the module: every test uses its own delivery ids."""
    settings = Settings(db_path=tmp_path_factory.mktemp("swaps") / "db.duckdb", batch_linger_ms=0.5)
    sources = {
        "acme": make_source("acme", "shopify", SECRET),
        "woo": make_source("woo", "woocommerce", SECRET),
        "pay": make_source("pay", "stripe", SECRET),
    }
    with TestClient(create_app(settings, sources, clock=FrozenClock())) as test_client:
        yield test_client


def rows(client: TestClient, sql: str, *params: object) -> list[tuple[Any, ...]]:
    con: duckdb.DuckDBPyConnection = service_of(client).con
    cursor = con.cursor()
    try:
        return cursor.execute(sql, list(params)).fetchall()
    finally:
        cursor.close()


def quarantined(client: TestClient, source: str, delivery_id: str) -> str:
    """The reason a delivery was quarantined with (it produced no event)."""
    [(status, reason, events)] = rows(
        client,
        "SELECT status, reason, event_count FROM deliveries WHERE source = ? AND delivery_id = ?",
        source,
        delivery_id,
    )
    assert (status, events) == ("quarantined", 0)
    return str(reason)


@pytest.mark.parametrize(
    ("body", "topic", "found"),
    [
        (SHOPIFY_ORDER, "orders/delete", "an order"),
        (SHOPIFY_ORDER, "checkouts/delete", "an order"),
        (SHOPIFY_ORDER, "refunds/create", "an order"),
        (SHOPIFY_ORDER, "carts/create", "an order"),
        (SHOPIFY_ORDER, "checkouts/update", "an order"),
        (SHOPIFY_CHECKOUT, "orders/create", "a checkout"),
        (SHOPIFY_CHECKOUT, "orders/delete", "a checkout"),
        (SHOPIFY_CHECKOUT, "carts/update", "a checkout"),
        (SHOPIFY_CART, "checkouts/create", "a cart"),
        (SHOPIFY_CART, "orders/delete", "a cart"),
        (SHOPIFY_REFUND, "orders/updated", "a refund"),
        (SHOPIFY_REFUND, "orders/delete", "a refund"),
        (b'{"id": 820982911946154508}', "orders/updated", "a deletion notice"),
        (b'{"id": 820982911946154508}', "refunds/create", "a deletion notice"),
    ],
)
def test_a_shopify_body_under_another_topic_is_quarantined(
    client: TestClient, body: bytes, topic: str, found: str
) -> None:
    delivery = f"swap:{topic}:{found}"
    answer = signed_post(client, "acme", "shopify", body, topic=topic, delivery_id=delivery)
    assert answer.status_code == 202, answer.text
    assert answer.json()["reason"].startswith(f"{TOPIC_MISMATCH}: {topic!r} needs ")
    assert quarantined(client, "acme", delivery).endswith(f"the body is {found}")


def test_a_shopify_order_that_is_not_cancelled_cannot_be_sent_as_cancelled(
    client: TestClient,
) -> None:
    live = fixture_json("shopify", "orders_create.json") | {"cancelled_at": None}
    body = orjson.dumps(live)
    answer = signed_post(
        client, "acme", "shopify", body, topic="orders/cancelled", delivery_id="not-cancelled"
    )
    assert answer.status_code == 202
    assert answer.json()["reason"] == (
        f"{TOPIC_MISMATCH}: 'orders/cancelled' needs a cancelled order (cancelled_at set); "
        "the body is not cancelled"
    )
    stored = signed_post(
        client, "acme", "shopify", body, topic="orders/updated", delivery_id="updated"
    )
    assert stored.status_code == 200 and stored.json()["status"] == "stored"


@pytest.mark.parametrize(
    ("name", "topic"),
    [
        ("carts_create.json", "carts/create"),
        ("checkouts_create.json", "checkouts/create"),
        ("checkouts_delete.json", "checkouts/delete"),
        ("orders_create.json", "orders/create"),
        ("orders_cancelled.json", "orders/cancelled"),
        ("refunds_create.json", "refunds/create"),
    ],
)
def test_every_shopify_body_under_its_own_topic_is_stored(
    client: TestClient, name: str, topic: str
) -> None:
    body = fixture_bytes("shopify", name)
    answer = signed_post(client, "acme", "shopify", body, topic=topic, delivery_id=f"own:{name}")
    assert answer.status_code == 200 and answer.json()["status"] == "stored", answer.text


def woo_orders(client: TestClient) -> int:
    service_of(client).worker.fold_now()
    answer = client.get("/api/v1/metrics", params={"source": "woo", **WOO_DAY})
    assert answer.status_code == 200, answer.text
    return int(answer.json()["orders"])


def test_a_replayed_woocommerce_order_sent_as_deleted_removes_nothing(client: TestClient) -> None:
    stored = signed_post(
        client, "woo", "woocommerce", WOO_ORDER, topic="order.updated", delivery_id="1"
    )
    assert stored.status_code == 200 and stored.json()["status"] == "stored"
    assert woo_orders(client) == 1
    replayed = signed_post(
        client, "woo", "woocommerce", WOO_ORDER, topic="order.deleted", delivery_id="2"
    )
    assert replayed.status_code == 202
    assert replayed.json()["reason"] == (
        f"{TOPIC_MISMATCH}: 'order.deleted' needs a deletion notice "
        '({"id": ...} alone); the body is an order'
    )
    assert woo_orders(client) == 1  # the real order still counts
    assert rows(client, "SELECT count(*) FROM events WHERE deleted AND source = 'woo'") == [(0,)]


def test_woocommerce_deletion_and_restore_bodies_must_match_their_topics(
    client: TestClient,
) -> None:
    notice = b'{"id": 727}'
    answer = signed_post(
        client, "woo", "woocommerce", notice, topic="order.updated", delivery_id="n"
    )
    assert answer.status_code == 202
    assert answer.json()["reason"].endswith(
        "'order.updated' needs an order; the body is a deletion notice"
    )
    trashed = json.loads(WOO_ORDER) | {"status": "trash"}
    answer = signed_post(
        client, "woo", "woocommerce", orjson.dumps(trashed), topic="order.restored", delivery_id="r"
    )
    assert answer.status_code == 202
    assert answer.json()["reason"].endswith("the body is an order in the trash")
    deleted = signed_post(
        client, "woo", "woocommerce", notice, topic="order.deleted", delivery_id="d"
    )
    assert deleted.status_code == 200 and deleted.json()["status"] == "stored"


def test_stripe_signs_its_topic_so_a_swapped_type_is_rejected(client: TestClient) -> None:
    event = fixture_json("stripe", "checkout.session.completed.json")
    body = orjson.dumps(event)
    headers = signed_headers(body)
    swapped = copy.deepcopy(event) | {"type": "checkout.session.async_payment_failed"}
    answer = client.post("/webhooks/pay", content=orjson.dumps(swapped), headers=headers)
    assert answer.status_code == 401
    assert client.post("/webhooks/pay", content=body, headers=headers).status_code == 200


def signed_headers(body: bytes) -> dict[str, str]:
    stamp = int(FrozenClock()().timestamp())
    return get_provider("stripe").sign(body, SECRET, topic="", delivery_id="", timestamp=stamp)
