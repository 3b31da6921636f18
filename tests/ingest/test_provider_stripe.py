"""Stripe adapter: Stripe-Signature, exact minor-unit money and the Checkout mapping.

Runs against every fixture in tests/fixtures/webhooks/stripe/ (see SOURCES.md there), including
the real Odoo test-mode delivery verified with its published secret at its own timestamp.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ingest.events import CanonicalEvent
from ingest.providers import get_provider
from ingest.providers.base import SignatureError, UnusableDelivery
from ingest.providers.stripe import Stripe, minor_to_decimal
from ingest.sources import Source
from ingest.storage.body_codec import unpack
from shoppulse.settings import Settings
from tests.conftest import FIXTURES as FIXTURE_DIR
from tests.conftest import (
    OTHER_SECRET,
    SECRET,
    WEBHOOKS,
    FrozenClock,
    fixture_bytes,
    fixture_json,
    make_source,
    signed_post,
)
from tests.helpers.app import query

PLATFORM = "stripe"
SOURCE = "shop-stripe"
ODOO_SOURCE = "odoo"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
TS = int(NOW.timestamp())
#: Every event body fixture and its type.
EVENTS = {
    "checkout.session.completed.json": "checkout.session.completed",
    "checkout.session.expired.json": "checkout.session.expired",
    "charge.refunded.json": "charge.refunded",
}
ODOO_BODY = "checkout.session.completed.json"
SESSION = "cs_test_SI8yz61JCZ4gxd7Z5oGfQSn9ZbubC6SZF3bJTxvy2PVqSd3dzbDV1kyd"
PAYMENT_INTENT = "pi_1GqFpCAlCFm536g8HsBSvSEt"
EXPIRED_SESSION = "cs_test_a1ykphA0L84SBLZVSvIAi63e7fZ7ENWuYjLNLyZhOvZj6keRMZJqr6Mz2G"


def odoo_vector() -> dict[str, Any]:
    vectors = json.loads((FIXTURE_DIR / "signatures.json").read_text())["vectors"]
    [vector] = [v for v in vectors if v["id"] == "stripe-odoo-checkout-session-completed"]
    return dict(vector)


@pytest.fixture
def sources() -> dict[str, Source]:
    return {
        SOURCE: make_source(SOURCE, PLATFORM, SECRET, OTHER_SECRET),
        ODOO_SOURCE: make_source(ODOO_SOURCE, PLATFORM, odoo_vector()["secret"]),
    }


def signed(body: bytes, secret: str = SECRET, ts: int = TS) -> dict[str, str]:
    headers = Stripe().sign(body, secret, topic="", delivery_id="", timestamp=ts)
    return {name.lower(): value for name, value in headers.items()}


def normalize(payload: Any) -> list[CanonicalEvent]:
    provider = Stripe()
    info = provider.delivery_info(json.dumps(payload).encode(), {}, payload)
    return provider.normalize(info.topic, payload, {})


def at(unix: int) -> datetime:
    return datetime.fromtimestamp(unix, UTC)


def modern_completed(**changes: Any) -> dict[str, Any]:
    """A current-API checkout.session.completed: the expired fixture's session, completed."""
    event = copy.deepcopy(fixture_json(PLATFORM, "checkout.session.expired.json"))
    session = event["data"]["object"]
    session.update(status="complete", payment_status="paid", mode="payment",
                   payment_intent="pi_modern", created=1645484613)  # fmt: skip
    session.update(changes)
    event.update(type="checkout.session.completed", id="evt_modern")
    return dict(event)


def test_fixture_directory_is_covered() -> None:
    names = {path.name for path in (WEBHOOKS / PLATFORM).iterdir()}
    extra = {"checkout.session.completed.headers.json", "checkout.session.expired.data-object.json"}
    assert names == set(EVENTS) | extra


# ----------------------------------------------------------------------------- published vector


def test_odoo_vector_verifies_the_exact_fixture_bytes_at_its_timestamp() -> None:
    vector = odoo_vector()
    body = fixture_bytes(PLATFORM, ODOO_BODY)
    assert hashlib.sha256(body).hexdigest() == vector["payload_sha256"]
    assert len(body) == vector["payload_length_bytes"]
    header = fixture_json(PLATFORM, "checkout.session.completed.headers.json")["Stripe-Signature"]
    assert header == vector["headers"]["Stripe-Signature"]
    headers = {"stripe-signature": header}
    signed_at = at(vector["timestamp"])
    Stripe().verify(body, headers, [vector["secret"]], signed_at)
    Stripe().verify(body, headers, [SECRET, vector["secret"]], signed_at)  # rotation
    ours = signed(body, vector["secret"], vector["timestamp"])["stripe-signature"]
    assert ours == f"t={vector['timestamp']},v1={vector['expected_v1']}"
    with pytest.raises(SignatureError, match="does not match"):
        Stripe().verify(body + b"\n", headers, [vector["secret"]], signed_at)
    with pytest.raises(SignatureError, match="does not match"):
        Stripe().verify(body, headers, [vector["secret"].upper()], signed_at)
    with pytest.raises(SignatureError, match="301 s old"):
        Stripe().verify(body, headers, [vector["secret"]], signed_at + timedelta(seconds=301))
    Stripe().verify(body, headers, [vector["secret"]], signed_at + timedelta(seconds=300))


def test_v0_alone_is_not_accepted() -> None:
    vector = odoo_vector()
    body = fixture_bytes(PLATFORM, ODOO_BODY)
    only_v0 = re.sub(r",v1=[0-9a-f]+", "", vector["headers"]["Stripe-Signature"])
    assert "v1=" not in only_v0
    with pytest.raises(SignatureError, match="no v1 signature"):
        Stripe().verify(body, {"stripe-signature": only_v0}, [vector["secret"]], at(1591264652))


# ----------------------------------------------------------------------------- signature


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_signature_of_every_fixture(name: str) -> None:
    body = fixture_bytes(PLATFORM, name)
    headers = signed(body)
    Stripe().verify(body, headers, [SECRET], NOW)
    expected = hmac.new(SECRET.encode(), f"{TS}.".encode() + body, hashlib.sha256).hexdigest()
    assert headers["stripe-signature"] == f"t={TS},v1={expected}"
    tampered = body.replace(b'"livemode": false', b'"livemode": true', 1)
    assert tampered != body
    with pytest.raises(SignatureError, match="does not match"):
        Stripe().verify(tampered, headers, [SECRET], NOW)
    with pytest.raises(SignatureError, match="does not match"):
        Stripe().verify(body, signed(body, "whsec_wrong"), [SECRET], NOW)
    Stripe().verify(body, signed(body, OTHER_SECRET), [SECRET, OTHER_SECRET], NOW)
    with pytest.raises(SignatureError, match="old"):
        Stripe().verify(body, signed(body, ts=TS - 301), [SECRET], NOW)
    with pytest.raises(SignatureError, match="in the future"):
        Stripe().verify(body, signed(body, ts=TS + 301), [SECRET], NOW)


def test_any_of_several_v1_signatures_is_accepted() -> None:
    body = fixture_bytes(PLATFORM, "charge.refunded.json")
    good = signed(body)["stripe-signature"]
    header = f"t={TS},v1={'0' * 64},{good.split(',')[1]},v0=abc"
    Stripe().verify(body, {"stripe-signature": header}, [SECRET], NOW)


@pytest.mark.parametrize(
    ("header", "reason"),
    [("", "missing Stripe-Signature"), ("v1=abc", "no valid t="), ("t=12a,v1=ab", "no valid t="),
     (f"t={TS}", "no v1 signature")],
)  # fmt: skip
def test_malformed_headers(header: str, reason: str) -> None:
    headers = {"stripe-signature": header} if header else {}
    with pytest.raises(SignatureError, match=reason):
        Stripe().verify(b"{}", headers, [SECRET], NOW)


def test_tolerance_comes_from_the_settings(tmp_path: Any) -> None:
    provider = get_provider(
        PLATFORM, Settings(db_path=tmp_path / "x", signature_tolerance_seconds=5)
    )
    body = fixture_bytes(PLATFORM, "charge.refunded.json")
    provider.verify(body, signed(body, ts=TS - 5), [SECRET], NOW)
    with pytest.raises(SignatureError, match="tolerance is 5 s"):
        provider.verify(body, signed(body, ts=TS - 6), [SECRET], NOW)


# ----------------------------------------------------------------------------- money


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [(1500, "USD", "15.00"), (1, "EUR", "0.01"), (500, "JPY", "500"), (12345, "KRW", "12345"),
     (1234, "KWD", "1.234"), (1005, "BHD", "1.005"), (7, "JOD", "0.007"), (100, "OMR", "0.1"),
     (2500, "TND", "2.5"), (100, "ISK", "1.00"), (0, "USD", "0"),
     (999999999999, "USD", "9999999999.99")],
)  # fmt: skip
def test_minor_units_convert_exactly(amount: int, currency: str, expected: str) -> None:
    value = minor_to_decimal(amount, currency)
    assert value == Decimal(expected)
    assert isinstance(value, Decimal)


# ----------------------------------------------------------------------------- mapping


def test_odoo_completed_session_field_by_field() -> None:
    payload = fixture_json(PLATFORM, ODOO_BODY)
    session = payload["data"]["object"]
    assert "amount_subtotal" not in session  # api_version 2019-05-16: the display_items fallback
    checkout, order = normalize(payload)
    event_time = at(payload["created"])
    assert event_time == datetime(2020, 6, 4, 9, 57, 31, tzinfo=UTC)
    assert (checkout.kind, checkout.action, checkout.entity_id) == ("checkout", "complete", SESSION)
    assert checkout.checkout_token == SESSION
    assert checkout.completed and not checkout.abandoned
    assert checkout.created_at == checkout.updated_at == event_time  # the session has no created
    assert checkout.currency == "USD"
    assert checkout.test is True  # livemode false
    assert (order.kind, order.action) == ("order", "paid")
    assert order.entity_id == order.order_id == session["payment_intent"] == PAYMENT_INTENT
    assert order.checkout_token == SESSION
    assert order.cart_token is None
    item = session["display_items"][0]
    assert order.gross_sales == Decimal(item["amount"] * item["quantity"]) / 100 == Decimal("30.00")
    assert order.discounts == Decimal(0)
    assert order.currency == item["currency"].upper() == "USD"
    assert order.created_at == order.updated_at == event_time
    assert order.test is True
    assert not (order.cancelled or order.deleted or order.completed)


def test_expired_session_field_by_field() -> None:
    payload = fixture_json(PLATFORM, "checkout.session.expired.json")
    [event] = normalize(payload)
    session = payload["data"]["object"]
    assert (event.kind, event.action, event.entity_id) == ("checkout", "expire", session["id"])
    assert event.checkout_token == session["id"]
    assert event.abandoned and not event.completed
    assert event.updated_at == at(session["expires_at"]) == at(payload["created"])
    assert event.created_at == at(payload["created"])
    assert event.currency == "USD"
    assert event.test is True
    assert event.order_id is None
    # The checkout's value: what the abandoned session was worth.
    assert (event.gross_sales, event.discounts) == (Decimal("5.00"), Decimal(0))
    assert session["amount_subtotal"] == 500


def test_expanded_line_items_become_order_lines() -> None:
    items = {
        "object": "list",
        "has_more": False,
        "data": [
            {
                "id": "li_1",
                "description": "Linen shirt",
                "quantity": 2,
                "amount_subtotal": 400,
                "amount_discount": 50,
                "price": {"id": "price_1", "product": "prod_1", "unit_amount": 200},
            },
            {
                "id": "li_2",
                "description": "Gift card",
                "quantity": 1,
                "amount_subtotal": 100,
                "price": {"id": "price_2", "product": {"id": "prod_2"}},
            },
        ],
    }
    _, order = normalize(modern_completed(line_items=items))
    assert order.lines is not None
    assert [line.model_dump() for line in order.lines] == [
        {
            "product_id": "prod_1",
            "variant_id": "price_1",
            "sku": None,
            "title": "Linen shirt",
            "quantity": 2,
            "unit_price": Decimal("2.00"),
            "discount": Decimal("0.50"),
        },
        {
            "product_id": "prod_2",
            "variant_id": "price_2",
            "sku": None,
            "title": "Gift card",
            "quantity": 1,
            "unit_price": Decimal("1.00"),
            "discount": Decimal(0),
        },
    ]
    assert sum(line.unit_price * line.quantity for line in order.lines) == order.gross_sales
    # Without the expansion (what a webhook sends) the lines are not known.
    _, order = normalize(modern_completed())
    assert order.lines is None


def test_charge_refunded_field_by_field() -> None:
    payload = fixture_json(PLATFORM, "charge.refunded.json")
    charge = payload["data"]["object"]
    [refund] = normalize(payload)
    entry = charge["refunds"]["data"][0]
    assert (refund.kind, refund.action, refund.entity_id) == ("refund", "refund", entry["id"])
    assert refund.refund_amount == Decimal(entry["amount"]) / 100 == Decimal("10.00")
    assert refund.order_id == charge["payment_intent"] == PAYMENT_INTENT  # the Odoo order
    assert refund.created_at == at(entry["created"])
    assert refund.updated_at == at(payload["created"])
    assert refund.currency == "USD"
    assert refund.test is True


def test_charge_refunded_without_the_refund_list_uses_the_cumulative_amount() -> None:
    payload = fixture_json(PLATFORM, "charge.refunded.json")
    charge = payload["data"]["object"]
    del charge["refunds"]  # API versions from 2022-11-15 no longer embed the list
    charge["amount_refunded"] = 2500
    [refund] = normalize(payload)
    assert refund.entity_id == charge["id"]
    assert refund.refund_amount == Decimal("25.00")
    assert refund.created_at == refund.updated_at == at(payload["created"])
    charge["refunds"] = {"object": "list", "data": [], "has_more": True}
    assert normalize(payload)[0].refund_amount == Decimal("25.00")


def test_failed_refund_counts_zero() -> None:
    payload = fixture_json(PLATFORM, "charge.refunded.json")
    payload["data"]["object"]["refunds"]["data"][0]["status"] = "failed"
    assert normalize(payload)[0].refund_amount == Decimal(0)


def test_current_api_session_uses_amount_subtotal_and_discount() -> None:
    payload = modern_completed(
        amount_subtotal=12000, total_details={"amount_discount": 1500, "amount_tax": 0}
    )
    checkout, order = normalize(payload)
    assert order.gross_sales == Decimal("120.00")
    assert order.discounts == Decimal("15.00")
    assert order.entity_id == "pi_modern"
    assert order.created_at == checkout.created_at == at(1645484613)  # the session's created
    assert order.updated_at == at(payload["created"])


@pytest.mark.parametrize(
    ("currency", "subtotal", "discount", "gross", "off"),
    [("jpy", 5000, 500, "5000", "500"), ("kwd", 12345, 345, "12.345", "0.345"),
     ("eur", 1999, 0, "19.99", "0")],
)  # fmt: skip
def test_session_money_uses_the_currency_exponent(
    currency: str, subtotal: int, discount: int, gross: str, off: str
) -> None:
    payload = modern_completed(
        currency=currency, amount_subtotal=subtotal, total_details={"amount_discount": discount}
    )
    order = normalize(payload)[1]
    assert (order.gross_sales, order.discounts) == (Decimal(gross), Decimal(off))
    assert order.currency == currency.upper()


def test_livemode_event_is_not_a_test() -> None:
    payload = modern_completed(livemode=True)
    payload["livemode"] = True
    assert [event.test for event in normalize(payload)] == [False, False]


def test_async_payment_succeeded_is_the_same_as_completed() -> None:
    completed = modern_completed()
    succeeded = dict(copy.deepcopy(completed), type="checkout.session.async_payment_succeeded")
    assert normalize(succeeded) == normalize(completed)


def test_async_payment_failed_cancels_the_order() -> None:
    unpaid = modern_completed(payment_status="unpaid")
    checkout, order = normalize(unpaid)
    assert (order.action, order.cancelled, checkout.completed) == ("create", False, True)
    failed = dict(copy.deepcopy(unpaid), type="checkout.session.async_payment_failed")
    checkout, order = normalize(failed)
    assert (order.action, order.cancelled, order.entity_id) == ("cancel", True, "pi_modern")
    assert checkout.completed
    assert order.gross_sales == Decimal("5.00")


def test_session_without_payment_intent_is_keyed_by_the_session() -> None:
    payload = modern_completed(payment_intent=None, mode="subscription")
    checkout, order = normalize(payload)
    assert order.entity_id == order.checkout_token == checkout.entity_id


def test_setup_session_is_a_completed_checkout_without_an_order() -> None:
    payload = modern_completed(mode="setup", amount_subtotal=None, amount_total=None)
    [checkout] = normalize(payload)
    assert checkout.completed and checkout.kind == "checkout"


@pytest.mark.parametrize(
    ("change", "reason"),
    [({"amount_subtotal": "120.00"}, "field 'data.object.amount_subtotal' must be an integer"),
     ({"amount_subtotal": None}, "field 'data.object.amount_subtotal' is missing"),
     ({"currency": None}, "field 'data.object.currency' is missing"),
     ({"total_details": {"amount_discount": 1.5}},
      "field 'data.object.total_details.amount_discount' must be an integer"),
     ({"livemode": "no"}, "field 'livemode' must be true or false")],
)  # fmt: skip
def test_unusable_sessions_name_the_field(change: dict[str, Any], reason: str) -> None:
    payload = modern_completed(**change)
    if "livemode" in change:
        payload["livemode"] = "no"
    with pytest.raises(UnusableDelivery, match=re.escape(reason)):
        normalize(payload)


def test_unknown_type_is_unusable() -> None:
    payload = dict(fixture_json(PLATFORM, "charge.refunded.json"), type="invoice.paid")
    with pytest.raises(UnusableDelivery, match=re.escape("unknown topic 'invoice.paid'")):
        normalize(payload)


# ----------------------------------------------------------------------------- through the app


def test_odoo_delivery_through_the_app(client: TestClient, clock: FrozenClock) -> None:
    vector = odoo_vector()
    body = fixture_bytes(PLATFORM, ODOO_BODY)
    headers = {"Content-Type": "application/json; charset=utf-8"}
    headers.update(fixture_json(PLATFORM, "checkout.session.completed.headers.json"))
    clock.now = at(vector["timestamp"]) + timedelta(seconds=301)
    late = client.post(f"/webhooks/{ODOO_SOURCE}", content=body, headers=headers)
    assert late.status_code == 401
    clock.now = at(vector["timestamp"])
    response = client.post(f"/webhooks/{ODOO_SOURCE}", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "stored",
        "source": ODOO_SOURCE,
        "delivery_id": "evt_1GqFpHAlCFm536g8NYSLoccF",
        "events": 2,
    }
    again = client.post(f"/webhooks/{ODOO_SOURCE}", content=body, headers=headers)
    assert again.json()["status"] == "duplicate"
    [delivery] = query(
        client, "SELECT delivery_id, topic, status, body, body_codec FROM deliveries"
    )
    assert delivery["topic"] == "checkout.session.completed"
    assert unpack(delivery["body"], delivery["body_codec"]) == body
    events = query(
        client,
        "SELECT kind, entity_id, checkout_token, order_id, currency, gross_sales, discounts, "
        "test, completed, epoch(created_at)::BIGINT AS created FROM events ORDER BY event_seq",
    )
    assert events == [
        {"kind": "checkout", "entity_id": SESSION, "checkout_token": SESSION, "order_id": None,
         "currency": "USD", "gross_sales": Decimal("30.0000"), "discounts": Decimal("0.0000"),
         "test": True,
         "completed": True, "created": 1591264651},
        {"kind": "order", "entity_id": PAYMENT_INTENT, "checkout_token": SESSION,
         "order_id": PAYMENT_INTENT, "currency": "USD", "gross_sales": Decimal("30.0000"),
         "discounts": Decimal("0.0000"), "test": True, "completed": False,
         "created": 1591264651},
    ]  # fmt: skip


def test_every_fixture_through_the_app(client: TestClient) -> None:
    for name, topic in sorted(EVENTS.items()):
        body = fixture_bytes(PLATFORM, name)
        response = signed_post(client, SOURCE, PLATFORM, body, topic=topic, delivery_id="")
        assert response.status_code == 200, response.text
        assert response.json()["delivery_id"] == json.loads(body)["id"]
    rows = query(
        client,
        "SELECT d.topic, e.kind, e.entity_id, e.order_id, e.refund_amount, e.abandoned, e.test "
        "FROM events e JOIN deliveries d USING (delivery_seq) ORDER BY e.event_seq",
    )
    assert rows == [
        {"topic": "charge.refunded", "kind": "refund", "entity_id": "re_fixture_partial_refund",
         "order_id": PAYMENT_INTENT, "refund_amount": Decimal("10.0000"), "abandoned": False,
         "test": True},
        {"topic": "checkout.session.completed", "kind": "checkout", "entity_id": SESSION,
         "order_id": None, "refund_amount": None, "abandoned": False, "test": True},
        {"topic": "checkout.session.completed", "kind": "order", "entity_id": PAYMENT_INTENT,
         "order_id": PAYMENT_INTENT, "refund_amount": None, "abandoned": False, "test": True},
        {"topic": "checkout.session.expired", "kind": "checkout",
         "entity_id": EXPIRED_SESSION,
         "order_id": None, "refund_amount": None, "abandoned": True, "test": True},
    ]  # fmt: skip


def test_livemode_event_is_stored_as_not_test(client: TestClient) -> None:
    payload = modern_completed(livemode=True)
    payload["livemode"] = True
    body = json.dumps(payload).encode()
    response = signed_post(client, SOURCE, PLATFORM, body, topic="", delivery_id="")
    assert response.status_code == 200
    assert query(client, "SELECT DISTINCT test FROM events") == [{"test": False}]


def test_rejections_through_the_app(client: TestClient) -> None:
    body = fixture_bytes(PLATFORM, "charge.refunded.json")
    headers = Stripe().sign(body, SECRET, topic="", delivery_id="", timestamp=TS)
    tampered = client.post(
        f"/webhooks/{SOURCE}", content=body.replace(b"1000", b"9000"), headers=headers
    )
    assert tampered.status_code == 401
    wrong = signed_post(client, SOURCE, PLATFORM, body, topic="", delivery_id="", secret="whsec_x")
    assert wrong.status_code == 401
    expired = signed_post(
        client, SOURCE, PLATFORM, body, topic="", delivery_id="", timestamp=TS - 900
    )
    assert expired.status_code == 401
    assert query(client, "SELECT count(*) AS n FROM deliveries") == [{"n": 0}]
    rotated = signed_post(
        client, SOURCE, PLATFORM, body, topic="", delivery_id="", secret=OTHER_SECRET
    )
    assert rotated.status_code == 200


def test_unusable_event_is_quarantined(client: TestClient) -> None:
    body = json.dumps(modern_completed(amount_subtotal="120.00")).encode()
    response = signed_post(client, SOURCE, PLATFORM, body, topic="", delivery_id="")
    assert response.status_code == 202
    reason = "field 'data.object.amount_subtotal' must be an integer"
    assert response.json()["reason"] == reason
    assert query(client, "SELECT delivery_id, status, reason FROM deliveries") == [
        {"delivery_id": "evt_modern", "status": "quarantined", "reason": reason}
    ]
