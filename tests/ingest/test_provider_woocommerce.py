"""WooCommerce adapter: signature, ping, version-based delivery ids and the status mapping.

Every test runs against the published REST API v3 order examples in
tests/fixtures/webhooks/woocommerce/, at the adapter and through the real app and DuckDB file.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ingest.events import CanonicalEvent
from ingest.providers import get_provider
from ingest.providers.base import SignatureError, UnusableDelivery
from ingest.providers.woocommerce import WooCommerce
from ingest.sources import Source
from ingest.storage.body_codec import unpack
from tests.conftest import (
    OTHER_SECRET,
    SECRET,
    WEBHOOKS,
    fixture_bytes,
    fixture_json,
    make_source,
    signed_post,
)
from tests.helpers.app import query

PLATFORM = "woocommerce"
SOURCE = "woo"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
#: Every order body fixture, with the topic it is posted under.
FIXTURES = {"order.created.json": "order.created", "order.updated.json": "order.updated"}


@pytest.fixture
def sources() -> dict[str, Source]:
    return {SOURCE: make_source(SOURCE, PLATFORM, SECRET, OTHER_SECRET)}


@pytest.fixture
def woo() -> WooCommerce:
    provider = get_provider(PLATFORM)
    assert isinstance(provider, WooCommerce)
    return provider


def headers_for(
    body: bytes, topic: str, secret: str = SECRET, delivery: str = "d-1"
) -> dict[str, str]:
    """Lower-case headers, as the intake hands them to the adapter."""
    signed = get_provider(PLATFORM).sign(
        body, secret, topic=topic, delivery_id=delivery, timestamp=0
    )
    return {name.lower(): value for name, value in signed.items()}


def order(name: str = "order.updated.json", **changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = copy.deepcopy(fixture_json(PLATFORM, name))
    payload.update(changes)
    return payload


def normalize(payload: Any, topic: str = "order.updated") -> list[CanonicalEvent]:
    return WooCommerce().normalize(topic, payload, {})


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# ----------------------------------------------------------------------------- signature


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_signature_of_every_fixture_is_accepted(woo: WooCommerce, name: str) -> None:
    body = fixture_bytes(PLATFORM, name)
    woo.verify(body, headers_for(body, FIXTURES[name]), [SECRET], NOW)


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_signature_is_base64_hmac_sha256_of_the_raw_body(woo: WooCommerce, name: str) -> None:
    body = fixture_bytes(PLATFORM, name)
    expected = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
    assert headers_for(body, FIXTURES[name])["x-wc-webhook-signature"] == expected


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_tampered_body_and_wrong_secret_are_rejected(woo: WooCommerce, name: str) -> None:
    body = fixture_bytes(PLATFORM, name)
    headers = headers_for(body, FIXTURES[name])
    tampered = body.replace(b'"total": "29.35"', b'"total": "2935.00"')
    assert tampered != body
    with pytest.raises(SignatureError, match="does not match"):
        woo.verify(tampered, headers, [SECRET], NOW)
    with pytest.raises(SignatureError, match="does not match"):
        woo.verify(body, headers_for(body, FIXTURES[name], secret="not-the-secret"), [SECRET], NOW)
    with pytest.raises(SignatureError, match="missing"):
        woo.verify(body, {"x-wc-webhook-topic": FIXTURES[name]}, [SECRET], NOW)


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_second_secret_of_a_rotation_is_accepted(woo: WooCommerce, name: str) -> None:
    body = fixture_bytes(PLATFORM, name)
    woo.verify(
        body, headers_for(body, FIXTURES[name], secret=OTHER_SECRET), [SECRET, OTHER_SECRET], NOW
    )


def test_sign_sends_the_documented_headers(woo: WooCommerce) -> None:
    documented = fixture_json(PLATFORM, "order.updated.headers.json")
    signed = woo.sign(b"{}", SECRET, topic="order.updated", delivery_id="d", timestamp=0)
    for name in documented:
        assert name in signed
    for name in ("X-WC-Webhook-Topic", "X-WC-Webhook-Resource", "X-WC-Webhook-Event"):
        assert signed[name] == documented[name]
    kept = set(woo.kept_headers)
    assert {name.lower() for name in documented} <= kept
    assert "x-wc-webhook-signature" not in kept


# ----------------------------------------------------------------------------- ping


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (b"webhook_id=12", "application/x-www-form-urlencoded", True),
        (b"webhook_id=12", "application/x-www-form-urlencoded; charset=UTF-8", True),
        (b"webhook_id=12", "", True),
        (b"webhook_id=12&total=99", "application/x-www-form-urlencoded", False),
        (b"webhook_id=12\n", "application/x-www-form-urlencoded", False),
        (b"webhook_id=", "application/x-www-form-urlencoded", False),
        (b"webhook_id=abc", "application/x-www-form-urlencoded", False),
        (b"webhook_id=12", "application/json", False),
        (b'{"webhook_id": 12}', "application/json", False),
        (b"webhook_id=" + b"1" * 21, "application/x-www-form-urlencoded", False),
    ],
)
def test_is_ping_is_strict(
    woo: WooCommerce, body: bytes, content_type: str, expected: bool
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    assert woo.is_ping(body, headers) is expected


# ----------------------------------------------------------------------------- delivery ids


def test_delivery_id_is_the_order_version(woo: WooCommerce) -> None:
    body = fixture_bytes(PLATFORM, "order.updated.json")
    info = woo.delivery_info(body, headers_for(body, "order.updated"), json.loads(body))
    assert info.topic == "order.updated"
    assert info.delivery_id == "order:727:2017-03-22T19:30:35:order.updated"


def test_delivery_id_falls_back_to_the_header_then_the_body(woo: WooCommerce) -> None:
    body = b'{"id": 727}'
    headers = headers_for(body, "order.deleted", delivery="abc123")
    assert woo.delivery_info(body, headers, json.loads(body)).delivery_id == "abc123"
    del headers["x-wc-webhook-delivery-id"]
    expected = "sha256:" + hashlib.sha256(body).hexdigest()
    assert woo.delivery_info(body, headers, json.loads(body)).delivery_id == expected


# ----------------------------------------------------------------------------- mapping


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_order_fixture_normalizes_field_by_field(name: str) -> None:
    payload = fixture_json(PLATFORM, name)
    topic = FIXTURES[name]
    events = normalize(payload, topic)
    assert len(events) == 1
    event = events[0]
    subtotal = sum(Decimal(item["subtotal"]) for item in payload["line_items"])
    assert subtotal == Decimal("18.00")  # 2 x 3.00 + 1 x 12.00, before tax and shipping
    assert event.kind == "order"
    assert event.action == ("create" if topic == "order.created" else "update")
    assert event.entity_id == str(payload["id"]) == "727"
    assert event.order_id == "727"
    assert event.checkout_token == "727"  # the checkout of the same id completes
    assert event.cart_token is None
    assert event.created_at == utc(payload["date_created_gmt"]) == utc("2017-03-22T19:28:02")
    assert event.updated_at == utc(payload["date_modified_gmt"])
    assert event.currency == payload["currency"] == "USD"
    assert event.gross_sales == subtotal
    assert event.discounts == Decimal(payload["discount_total"]) == Decimal("0.00")
    assert event.refund_amount is None
    assert (event.test, event.cancelled, event.deleted, event.abandoned, event.completed) == (
        False, False, False, False, False,
    )  # fmt: skip


def test_the_two_fixtures_are_two_versions_of_one_order() -> None:
    created = normalize(fixture_json(PLATFORM, "order.created.json"), "order.created")[0]
    updated = normalize(fixture_json(PLATFORM, "order.updated.json"))[0]
    assert created.entity_id == updated.entity_id
    assert created.created_at == updated.created_at
    assert created.updated_at == utc("2017-03-22T19:28:08")
    assert updated.updated_at == utc("2017-03-22T19:30:35")


@pytest.mark.parametrize("status", ["pending", "failed", "checkout-draft"])
def test_unfinished_statuses_are_a_checkout_started(status: str) -> None:
    payload = order("order.created.json", status=status, date_paid_gmt=None)
    [event] = normalize(payload, "order.created")
    assert event.kind == "checkout"
    assert event.action == "create"
    assert event.entity_id == event.checkout_token == "727"
    assert event.order_id is None
    assert event.created_at == utc("2017-03-22T19:28:02")
    assert event.updated_at == utc("2017-03-22T19:28:08")
    assert event.currency == "USD"
    # The checkout's value: its items before discounts, as an order's gross sales.
    assert (event.gross_sales, event.discounts) == (Decimal("18.00"), Decimal(0))
    assert not (event.completed or event.abandoned or event.cancelled or event.deleted)


@pytest.mark.parametrize("status", ["processing", "on-hold", "completed"])
def test_placed_statuses_are_an_order_that_completes_its_checkout(status: str) -> None:
    [event] = normalize(order(status=status))
    assert (event.kind, event.entity_id, event.checkout_token) == ("order", "727", "727")
    assert not event.cancelled


def test_paid_then_cancelled_order_is_cancelled_and_keeps_its_checkout() -> None:
    [event] = normalize(order(status="cancelled"))
    assert (event.kind, event.action, event.cancelled) == ("order", "cancel", True)
    assert event.checkout_token == "727"
    assert event.gross_sales == Decimal("18.00")


def test_unpaid_cancelled_order_does_not_complete_a_checkout() -> None:
    [event] = normalize(order(status="cancelled", date_paid=None, date_paid_gmt=None))
    assert (event.kind, event.cancelled) == ("order", True)
    assert event.checkout_token is None


def test_trash_and_order_deleted_are_a_deleted_order() -> None:
    [trashed] = normalize(order(status="trash"))
    assert (trashed.kind, trashed.action, trashed.entity_id, trashed.deleted) == (
        "order", "delete", "727", True,
    )  # fmt: skip
    assert trashed.updated_at == utc("2017-03-22T19:30:35")
    [deleted] = normalize({"id": 727}, "order.deleted")
    assert (deleted.kind, deleted.action, deleted.entity_id, deleted.deleted) == (
        "order", "delete", "727", True,
    )  # fmt: skip
    assert deleted.created_at is None and deleted.updated_at is None


def test_restored_order_is_a_restore_marker_then_mapped_by_its_status() -> None:
    [marker, event] = normalize(order(status="processing"), "order.restored")
    assert (marker.kind, marker.action, marker.entity_id, marker.deleted) == (
        "order", "restore", "727", False,
    )  # fmt: skip
    assert marker.updated_at == utc("2017-03-22T19:30:35") and marker.gross_sales is None
    assert (event.kind, event.action, event.deleted) == ("order", "update", False)


def test_refunded_order_and_its_refunds() -> None:
    refunds = [
        {"id": 731, "reason": "damaged", "total": "-6.45"},
        {"id": 732, "reason": "", "total": "-22.90"},
    ]
    events = normalize(order(status="refunded", refunds=refunds))
    assert [e.kind for e in events] == ["order", "refund", "refund"]
    assert events[0].checkout_token == "727" and not events[0].cancelled
    # The order: line items 18.00 (after discounts, before tax) of a grand total of 29.35 (with
    # 1.35 tax and 10.00 shipping); a webhook gives only each refund's total, so the line-item
    # part is estimated as the order's line-item share of it.
    for event, entry, share in zip(events[1:], refunds, ["3.9557", "14.0443"], strict=True):
        assert event.entity_id == str(entry["id"])
        assert event.refund_amount == Decimal(share)
        assert event.order_id == "727"
        assert event.currency == "USD"
        assert event.created_at == event.updated_at == utc("2017-03-22T19:30:35")
    # Refunded in full: the returns are exactly the line items, without tax and shipping.
    assert sum(e.refund_amount or 0 for e in events[1:]) == Decimal("18.00")


def test_a_refund_with_its_line_items_counts_their_totals() -> None:
    """As WooCommerce's refunds API gives a refund: line items with negative totals."""
    refund = {
        "id": 733,
        "total": "-17.45",
        "line_items": [
            {"id": 1, "subtotal": "-12.00", "total": "-10.80", "total_tax": "-0.65"},
            {"id": 2, "subtotal": "-6.00", "total": "-6.00", "total_tax": "0.00"},
        ],
    }
    [_, event] = normalize(order(refunds=[refund]))
    assert event.refund_amount == Decimal("16.80")
    with pytest.raises(UnusableDelivery, match=r"refunds\[0\]\.line_items\[1\]\.total"):
        normalize(order(refunds=[refund | {"line_items": [{"total": "1"}, {"id": 2}]}]))


def test_partial_refund_on_a_completed_order_is_a_refund_too() -> None:
    events = normalize(order(refunds=[{"id": 740, "reason": "", "total": "-5.00"}]))
    assert [(e.kind, e.refund_amount) for e in events] == [
        ("order", None),
        ("refund", Decimal("3.0664")),  # 5.00 x 18.00 / 29.35: the line-item share
    ]


def test_discounts_are_the_discount_total() -> None:
    [event] = normalize(order(discount_total="3.50"))
    assert event.gross_sales == Decimal("18.00")
    assert event.discounts == Decimal("3.50")


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (order(status="shipped"), "unknown order status 'shipped'"),
        (order(status=None), "field 'status' is missing"),
        (order(date_modified_gmt=None), "field 'date_modified_gmt' is missing"),
        (order(date_created_gmt="yesterday"), "field 'date_created_gmt' is not an ISO 8601 time"),
        (order(currency=None), "field 'currency' is missing"),
        (order(line_items=[{"id": 1}]), "field 'line_items[0].subtotal' is missing"),
        (order(refunds=[{"total": "-1.00"}]), "field 'refunds[0].id' is missing"),
        (order(refunds=[{"id": 9, "total": "lots"}]), "field 'refunds[0].total' is not a decimal"),
        ([1, 2], "payload must be a JSON object"),
    ],
)
def test_unusable_payloads_name_the_field(payload: Any, reason: str) -> None:
    with pytest.raises(UnusableDelivery, match=re.escape(reason)):
        normalize(payload)


def test_unknown_topic_is_unusable() -> None:
    with pytest.raises(UnusableDelivery, match=re.escape("unknown topic 'product.updated'")):
        normalize(order(), "product.updated")


# ----------------------------------------------------------------------------- through the app


def test_every_fixture_is_stored_with_its_events(client: TestClient) -> None:
    for name, topic in sorted(FIXTURES.items()):
        body = fixture_bytes(PLATFORM, name)
        response = signed_post(
            client, SOURCE, PLATFORM, body, topic=topic, delivery_id=f"wc-{topic}"
        )
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "stored"
        assert response.json()["events"] == 1
    deliveries = query(
        client,
        "SELECT delivery_id, topic, status, event_count, headers FROM deliveries "
        "ORDER BY delivery_seq",
    )
    assert [(d["delivery_id"], d["topic"], d["status"], d["event_count"]) for d in deliveries] == [
        ("order:727:2017-03-22T19:28:08:order.created", "order.created", "accepted", 1),
        ("order:727:2017-03-22T19:30:35:order.updated", "order.updated", "accepted", 1),
    ]
    kept = json.loads(deliveries[0]["headers"])
    assert kept["x-wc-webhook-delivery-id"] == "wc-order.created"
    assert "x-wc-webhook-signature" not in kept
    events = query(
        client,
        "SELECT kind, action, entity_id, checkout_token, order_id, currency, gross_sales, "
        "discounts, test, cancelled, epoch(created_at) AS created, epoch(updated_at) AS updated "
        "FROM events ORDER BY event_seq",
    )
    assert events == [
        {
            "kind": "order", "action": action, "entity_id": "727", "checkout_token": "727",
            "order_id": "727", "currency": "USD", "gross_sales": Decimal("18.0000"),
            "discounts": Decimal("0.0000"), "test": False, "cancelled": False,
            "created": utc("2017-03-22T19:28:02").timestamp(), "updated": updated.timestamp(),
        }
        for action, updated in (
            ("create", utc("2017-03-22T19:28:08")),
            ("update", utc("2017-03-22T19:30:35")),
        )
    ]  # fmt: skip


def test_ping_gets_exactly_200_and_stores_nothing(client: TestClient) -> None:
    response = client.post(
        f"/webhooks/{SOURCE}",
        content=b"webhook_id=42",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert response.json() == {"status": "ping", "stored": False}
    assert query(client, "SELECT count(*) AS n FROM deliveries") == [{"n": 0}]
    assert query(client, "SELECT count(*) AS n FROM events") == [{"n": 0}]


def test_a_ping_lookalike_carrying_data_is_not_a_ping(client: TestClient) -> None:
    response = client.post(
        f"/webhooks/{SOURCE}",
        content=b"webhook_id=42&status=completed",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 415
    response = client.post(
        f"/webhooks/{SOURCE}",
        content=b"webhook_id=42",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 401
    assert query(client, "SELECT count(*) AS n FROM deliveries") == [{"n": 0}]


def test_same_order_version_under_new_delivery_ids_is_a_duplicate(client: TestClient) -> None:
    body = fixture_bytes(PLATFORM, "order.updated.json")
    first = signed_post(client, SOURCE, PLATFORM, body, topic="order.updated", delivery_id="a1")
    second = signed_post(client, SOURCE, PLATFORM, body, topic="order.updated", delivery_id="b2")
    assert first.json()["status"] == "stored"
    assert second.status_code == 200
    assert second.json()["status"] == "duplicate"
    assert second.json()["delivery_id"] == "order:727:2017-03-22T19:30:35:order.updated"
    assert query(client, "SELECT count(*) AS n FROM deliveries") == [{"n": 1}]
    assert query(client, "SELECT count(*) AS n FROM events") == [{"n": 1}]
    newer = order(date_modified_gmt="2017-03-23T08:00:00", date_modified="2017-03-23T05:00:00")
    third = signed_post(
        client,
        SOURCE,
        PLATFORM,
        json.dumps(newer).encode(),
        topic="order.updated",
        delivery_id="c3",
    )
    assert third.json()["status"] == "stored"
    assert query(client, "SELECT count(*) AS n FROM deliveries") == [{"n": 2}]


def test_tampered_and_wrongly_signed_deliveries_get_401(client: TestClient) -> None:
    body = fixture_bytes(PLATFORM, "order.created.json")
    headers = get_provider(PLATFORM).sign(
        body, SECRET, topic="order.created", delivery_id="x", timestamp=0
    )
    tampered = client.post(
        f"/webhooks/{SOURCE}", content=body.replace(b"John", b"Jane"), headers=headers
    )
    assert tampered.status_code == 401
    assert tampered.json()["error"]["code"] == "invalid_signature"
    wrong = signed_post(
        client, SOURCE, PLATFORM, body, topic="order.created", delivery_id="y", secret="nope"
    )
    assert wrong.status_code == 401
    rotated = signed_post(
        client,
        SOURCE,
        PLATFORM,
        body,
        topic="order.created",
        delivery_id="z",
        secret=OTHER_SECRET,
    )
    assert rotated.status_code == 200
    assert query(client, "SELECT count(*) AS n FROM deliveries") == [{"n": 1}]


def test_unusable_order_is_quarantined_with_its_reason(client: TestClient) -> None:
    body = json.dumps(order(status="shipped")).encode()
    response = signed_post(client, SOURCE, PLATFORM, body, topic="order.updated", delivery_id="q")
    assert response.status_code == 202
    assert response.json()["reason"] == "unknown order status 'shipped'"
    [row] = query(client, "SELECT status, reason, body, body_codec FROM deliveries")
    assert (row["status"], row["reason"]) == ("quarantined", "unknown order status 'shipped'")
    assert unpack(row["body"], row["body_codec"]) == body


def test_fixture_directory_holds_only_known_files() -> None:
    """A new fixture must be added to FIXTURES so every test above covers it."""
    names = {path.name for path in (WEBHOOKS / PLATFORM).iterdir()}
    assert names == set(FIXTURES) | {"order.updated.headers.json"}


def test_order_name_and_line_items() -> None:
    payload = order("order.updated.json")
    [event] = normalize(payload)
    assert event.name == "#727"
    assert event.lines is not None
    assert [line.model_dump() for line in event.lines] == [
        {
            "product_id": "93",
            "variant_id": None,  # variation_id 0: a simple product
            "sku": None,  # sent as ""
            "title": "Woo Single #1",
            "quantity": 2,
            "unit_price": Decimal("3.00"),
            "discount": Decimal(0),
        },
        {
            "product_id": "22",
            "variant_id": "23",
            "sku": "Bar3",
            "title": "Ship Your Idea \u2013 Color: Black, Size: M Test",  # &ndash; decoded
            "quantity": 1,
            "unit_price": Decimal("12.00"),
            "discount": Decimal(0),
        },
    ]
    assert sum(line.unit_price * line.quantity for line in event.lines) == event.gross_sales


def test_a_line_discount_is_subtotal_minus_total() -> None:
    payload = order("order.updated.json")
    payload["line_items"][0].update(quantity=3, subtotal="10.00", total="8.50")
    [event] = normalize(payload)
    assert event.lines is not None
    line = event.lines[0]
    assert (line.unit_price, line.discount) == (Decimal("3.3333"), Decimal("1.50"))
