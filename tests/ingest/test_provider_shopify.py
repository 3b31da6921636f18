"""Every real Shopify fixture, signed the way Shopify signs, through the real app and DuckDB."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from decimal import Decimal

import duckdb
import pytest
from fastapi.testclient import TestClient

from ingest.providers import get_provider
from ingest.providers.base import SignatureError
from ingest.storage.body_codec import unpack
from tests.conftest import OTHER_SECRET, SECRET, fixture_bytes, fixture_json, signed_post
from tests.helpers.app import service_of

SHOPIFY = get_provider("shopify")

FIXTURE_TOPICS = {
    "carts_create.json": "carts/create",
    "carts_update.json": "carts/update",
    "checkouts_create.json": "checkouts/create",
    "checkouts_update.json": "checkouts/update",
    "checkouts_delete.json": "checkouts/delete",
    "orders_create.json": "orders/create",
    "orders_updated.json": "orders/updated",
    "orders_paid.json": "orders/paid",
    "orders_cancelled.json": "orders/cancelled",
    "refunds_create.json": "refunds/create",
}


def stored(
    client: TestClient, sql: str, params: list[object] | None = None
) -> list[tuple[object, ...]]:
    cursor = service_of(client).con.cursor()
    found: list[tuple[object, ...]] = cursor.execute(sql, params or []).fetchall()
    return found


def test_sign_matches_shopify_scheme() -> None:
    body = b'{"id": 1}'
    expected = base64.b64encode(hmac.new(b"k", body, hashlib.sha256).digest()).decode()
    headers = SHOPIFY.sign(body, "k", topic="orders/create", delivery_id="d", timestamp=0)
    assert headers["X-Shopify-Hmac-Sha256"] == expected
    SHOPIFY.verify(body, {k.lower(): v for k, v in headers.items()}, ["k"], datetime.now(UTC))


def test_verify_rejects_tampered_body_and_wrong_secret() -> None:
    body = fixture_bytes("shopify", "orders_create.json")
    headers = {
        k.lower(): v
        for k, v in SHOPIFY.sign(
            body, SECRET, topic="orders/create", delivery_id="d", timestamp=0
        ).items()
    }
    now = datetime.now(UTC)
    SHOPIFY.verify(body, headers, [SECRET], now)
    with pytest.raises(SignatureError, match="does not match"):
        SHOPIFY.verify(body + b" ", headers, [SECRET], now)
    with pytest.raises(SignatureError, match="does not match"):
        SHOPIFY.verify(body, headers, ["another-secret"], now)
    with pytest.raises(SignatureError, match="missing"):
        SHOPIFY.verify(body, {}, [SECRET], now)


@pytest.mark.parametrize("name,topic", sorted(FIXTURE_TOPICS.items()))
def test_every_fixture_is_stored(client: TestClient, name: str, topic: str) -> None:
    body = fixture_bytes("shopify", name)
    response = signed_post(client, "acme", "shopify", body, topic=topic, delivery_id=f"d-{name}")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "stored"
    rows = stored(
        client,
        "SELECT topic, status, reason, body, event_count, headers, body_codec FROM deliveries "
        "WHERE delivery_id = ?",
        [f"d-{name}"],
    )
    assert len(rows) == 1
    row = rows[0]
    assert row[0] == topic
    assert row[1] == "accepted" and row[2] is None
    assert row[6] == "zlib" and isinstance(row[3], bytes)
    assert unpack(row[3], row[6]) == body
    assert row[4] == 1
    assert "x-shopify-hmac-sha256" not in str(row[5])  # signatures are never kept
    assert "x-shopify-topic" in str(row[5])


def _event(client: TestClient, delivery_id: str) -> dict[str, object]:
    cursor = service_of(client).con.cursor()
    cursor.execute(
        "SELECT e.* FROM events e JOIN deliveries d USING (delivery_seq) WHERE d.delivery_id = ?",
        [delivery_id],
    )
    names = [c[0] for c in cursor.description or []]
    rows = cursor.fetchall()
    assert len(rows) == 1
    return dict(zip(names, rows[0], strict=True))


def test_order_normalized_field_by_field(client: TestClient) -> None:
    payload = fixture_json("shopify", "orders_create.json")
    body = fixture_bytes("shopify", "orders_create.json")
    signed_post(client, "acme", "shopify", body, topic="orders/create", delivery_id="o1")
    event = _event(client, "o1")
    assert event["kind"] == "order"
    assert event["entity_id"] == str(payload["id"]) == event["order_id"]
    assert event["currency"] == "USD"
    assert event["gross_sales"] == Decimal("414.95")
    assert event["discounts"] == Decimal("20.00")
    assert event["test"] is True
    assert event["cancelled"] is True
    assert event["deleted"] is False
    assert event["cart_token"] is None and event["checkout_token"] is None
    # 2021-12-31T19:00:00-05:00 is midnight UTC
    assert event["created_at"] == datetime(2022, 1, 1, tzinfo=UTC)
    assert event["updated_at"] == datetime(2022, 1, 1, tzinfo=UTC)


def test_order_name_and_line_items_are_stored_with_the_event(client: TestClient) -> None:
    payload = fixture_json("shopify", "orders_create.json")
    body = fixture_bytes("shopify", "orders_create.json")
    signed_post(client, "acme", "shopify", body, topic="orders/create", delivery_id="o1")
    event = _event(client, "o1")
    assert event["name"] == payload["name"] == "#9999"
    cursor = service_of(client).con.cursor()
    lines = cursor.execute(
        "SELECT line, product_id, variant_id, sku, title, quantity, unit_price, discount "
        "FROM event_lines WHERE event_seq = ? ORDER BY line",
        [event["event_seq"]],
    ).fetchall()
    items = payload["line_items"]
    assert [(r[0], r[3], r[4], r[5], r[6]) for r in lines] == [
        (n, i["sku"], i["title"], i["quantity"], Decimal(i["price_set"]["shop_money"]["amount"]))
        for n, i in enumerate(items, start=1)
    ]
    assert lines[0][1] == str(items[0]["product_id"]) and lines[1][1] is None  # no product
    assert all(r[2] is None and r[7] == 0 for r in lines)  # no variants, no line discounts
    assert sum(r[5] * r[6] for r in lines) == event["gross_sales"]


def test_line_discount_allocations_and_a_malformed_line(client: TestClient) -> None:
    from ingest.providers.shopify import Shopify

    payload = fixture_json("shopify", "orders_create.json")
    payload["line_items"][0]["discount_allocations"] = [
        {
            "amount": "9.00",
            "amount_set": {"shop_money": {"amount": "8.00", "currency_code": "USD"}},
        },
        {"amount": "1.50"},
    ]
    [event] = Shopify().normalize("orders/create", payload, {})
    assert event.lines is not None and event.lines[0].discount == Decimal("9.50")
    # A line without a usable price leaves the lines unknown; the order itself is unaffected.
    payload["line_items"][1]["price"] = "n/a"
    del payload["line_items"][1]["price_set"]
    [event] = Shopify().normalize("orders/create", payload, {})
    assert event.lines is None and event.gross_sales == Decimal("414.95")


def test_checkout_carries_its_value(client: TestClient) -> None:
    from ingest.providers.shopify import Shopify

    payload = fixture_json("shopify", "checkouts_create.json")
    [event] = Shopify().normalize("checkouts/create", payload, {})
    assert (event.gross_sales, event.discounts, event.currency) == (
        Decimal(payload["total_line_items_price"]),
        Decimal(0),
        "USD",
    )


def test_checkout_links_to_its_cart(client: TestClient) -> None:
    body = fixture_bytes("shopify", "checkouts_create.json")
    signed_post(client, "acme", "shopify", body, topic="checkouts/create", delivery_id="c1")
    event = _event(client, "c1")
    assert event["kind"] == "checkout"
    assert event["entity_id"] == "123123123" == event["checkout_token"]
    assert event["cart_token"] == "eeafa272cebfd4b22385bc4b645e762c"
    assert event["currency"] == "USD"
    assert event["created_at"] == datetime(2022, 1, 1, tzinfo=UTC)


def test_cart_and_refund_normalized(client: TestClient) -> None:
    signed_post(
        client,
        "acme",
        "shopify",
        fixture_bytes("shopify", "carts_create.json"),
        topic="carts/create",
        delivery_id="k1",
    )
    cart = _event(client, "k1")
    assert (cart["kind"], cart["entity_id"], cart["cart_token"]) == (
        "cart",
        "exampleCartId",
        "exampleCartId",
    )
    assert cart["created_at"] == datetime(2022, 1, 1, tzinfo=UTC)

    refund_payload = fixture_json("shopify", "refunds_create.json")
    signed_post(
        client,
        "acme",
        "shopify",
        fixture_bytes("shopify", "refunds_create.json"),
        topic="refunds/create",
        delivery_id="r1",
    )
    refund = _event(client, "r1")
    expected = sum(
        Decimal(item["subtotal_set"]["shop_money"]["amount"])
        for item in refund_payload["refund_line_items"]
    )
    assert refund["kind"] == "refund"
    assert refund["refund_amount"] == expected
    assert refund["order_id"] == str(refund_payload["order_id"])
    assert refund["currency"] == "USD"


def test_checkout_delete_and_order_delete(client: TestClient) -> None:
    signed_post(
        client,
        "acme",
        "shopify",
        fixture_bytes("shopify", "checkouts_delete.json"),
        topic="checkouts/delete",
        delivery_id="x1",
    )
    assert _event(client, "x1")["deleted"] is True
    response = signed_post(
        client,
        "acme",
        "shopify",
        b'{"id": 820982911946154508}',
        topic="orders/delete",
        delivery_id="x2",
    )
    assert response.status_code == 200
    event = _event(client, "x2")
    assert (event["kind"], event["entity_id"], event["deleted"]) == (
        "order",
        "820982911946154508",
        True,
    )


def test_big_integer_ids_are_exact(client: TestClient) -> None:
    body = (
        b'{"id": 820982911946154508, "order_id": 18446744073709551615, "created_at": '
        b'"2026-01-01T00:00:00Z", "refund_line_items": []}'
    )
    signed_post(client, "acme", "shopify", body, topic="refunds/create", delivery_id="big")
    event = _event(client, "big")
    assert event["entity_id"] == "820982911946154508"
    assert event["order_id"] == "18446744073709551615"


def test_rotation_second_secret_is_accepted(client: TestClient) -> None:
    body = fixture_bytes("shopify", "carts_update.json")
    response = signed_post(
        client,
        "acme",
        "shopify",
        body,
        topic="carts/update",
        delivery_id="rot",
        secret=OTHER_SECRET,
    )
    assert response.status_code == 200


def test_header_names_are_case_insensitive(client: TestClient) -> None:
    body = fixture_bytes("shopify", "carts_update.json")
    headers = SHOPIFY.sign(body, SECRET, topic="carts/update", delivery_id="lc", timestamp=0)
    lowered = {name.lower(): value for name, value in headers.items()}
    assert client.post("/webhooks/acme", content=body, headers=lowered).status_code == 200
    upper = {name.upper(): value for name, value in headers.items()}
    upper["X-SHOPIFY-WEBHOOK-ID"] = "uc"
    upper["X-SHOPIFY-HMAC-SHA256"] = headers["X-Shopify-Hmac-Sha256"]
    assert client.post("/webhooks/acme", content=body, headers=upper).status_code == 200


def test_stored_file_survives_reopen(client: TestClient, db_path: object) -> None:
    body = fixture_bytes("shopify", "orders_paid.json")
    signed_post(client, "acme", "shopify", body, topic="orders/paid", delivery_id="p1")
    client.__exit__(None, None, None)
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM events").fetchone() == (1,)
    finally:
        con.close()
