"""BigCommerce adapter: Standard Webhooks signatures keyed with the client secret, custom-header
secrets, hash-based delivery ids and the scope mapping.

Every test runs against every published callback example in tests/fixtures/webhooks/bigcommerce/,
at the adapter and through the real app and DuckDB file.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ingest.events import CanonicalEvent
from ingest.providers import get_provider
from ingest.providers.base import SignatureError, UnusableDelivery
from ingest.providers.bigcommerce import BigCommerce
from ingest.providers.standard import StandardWebhooks
from ingest.sources import Source
from shoppulse.settings import Settings
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

PLATFORM = "bigcommerce"
SOURCE = "bc"
HEADER_SOURCE = "bc-header"
HEADER_SECRET = "header:X-Shop-Auth:7c1f0e9a-only-we-know"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
TS = int(NOW.timestamp())
FIXTURES = sorted(path.name for path in (WEBHOOKS / PLATFORM).glob("*.json"))


@pytest.fixture
def sources() -> dict[str, Source]:
    return {
        SOURCE: make_source(SOURCE, PLATFORM, SECRET, OTHER_SECRET),
        HEADER_SOURCE: make_source(HEADER_SOURCE, PLATFORM, HEADER_SECRET),
    }


def signed(
    body: bytes, secret: str = SECRET, *, msg: str = "msg_1", ts: int = TS
) -> dict[str, str]:
    headers = BigCommerce().sign(body, secret, topic="", delivery_id=msg, timestamp=ts)
    return {name.lower(): value for name, value in headers.items()}


def normalize(payload: Any, headers: dict[str, str] | None = None) -> list[CanonicalEvent]:
    provider = BigCommerce()
    info = provider.delivery_info(json.dumps(payload).encode(), headers or {}, payload)
    return provider.normalize(info.topic, payload, headers or {})


def at(unix: int) -> datetime:
    return datetime.fromtimestamp(unix, UTC)


def test_all_eight_published_examples_are_covered() -> None:
    assert len(FIXTURES) == 8


# ----------------------------------------------------------------------------- signature


@pytest.mark.parametrize("name", FIXTURES)
def test_signature_of_every_fixture_is_accepted(name: str) -> None:
    body = fixture_bytes(PLATFORM, name)
    BigCommerce().verify(body, signed(body), [SECRET], NOW)


@pytest.mark.parametrize("name", FIXTURES)
def test_signature_is_standard_webhooks_keyed_with_the_client_secret_bytes(name: str) -> None:
    body = fixture_bytes(PLATFORM, name)
    headers = signed(body, msg="msg_x", ts=TS)
    content = f"msg_x.{TS}.".encode() + body
    digest = hmac.new(SECRET.encode("utf-8"), content, hashlib.sha256).digest()
    assert headers["webhook-signature"] == "v1," + base64.b64encode(digest).decode()
    assert (headers["webhook-id"], headers["webhook-timestamp"]) == ("msg_x", str(TS))
    # BigCommerce's documented recipe: a Standard Webhooks verifier given base64(client secret).
    documented_secret = base64.b64encode(SECRET.encode()).decode()
    StandardWebhooks().verify(body, headers, [documented_secret], NOW)


@pytest.mark.parametrize("name", FIXTURES)
def test_tampered_body_and_wrong_secret_are_rejected(name: str) -> None:
    body = fixture_bytes(PLATFORM, name)
    tampered = body.replace(b'"store_id": "1025646"', b'"store_id": "1025647"')
    assert tampered != body
    with pytest.raises(SignatureError, match="does not match"):
        BigCommerce().verify(tampered, signed(body), [SECRET], NOW)
    with pytest.raises(SignatureError, match="does not match"):
        BigCommerce().verify(body, signed(body, secret="not-the-client-secret"), [SECRET], NOW)
    with pytest.raises(SignatureError, match="missing webhook-signature"):
        BigCommerce().verify(body, {}, [SECRET], NOW)


@pytest.mark.parametrize("name", FIXTURES)
def test_second_secret_of_a_rotation_is_accepted(name: str) -> None:
    body = fixture_bytes(PLATFORM, name)
    BigCommerce().verify(body, signed(body, OTHER_SECRET), [SECRET, OTHER_SECRET], NOW)


@pytest.mark.parametrize("name", FIXTURES)
def test_expired_and_future_timestamps_are_rejected(name: str) -> None:
    body = fixture_bytes(PLATFORM, name)
    provider = BigCommerce(tolerance_seconds=300)
    provider.verify(body, signed(body, ts=TS - 300), [SECRET], NOW)
    provider.verify(body, signed(body, ts=TS + 300), [SECRET], NOW)
    with pytest.raises(SignatureError, match="301 s old"):
        provider.verify(body, signed(body, ts=TS - 301), [SECRET], NOW)
    with pytest.raises(SignatureError, match="in the future"):
        provider.verify(body, signed(body, ts=TS + 301), [SECRET], NOW)


def test_tolerance_comes_from_the_settings(tmp_path: Any) -> None:
    provider = get_provider(
        PLATFORM, Settings(db_path=tmp_path / "x", signature_tolerance_seconds=10)
    )
    body = fixture_bytes(PLATFORM, "store_order_created.json")
    provider.verify(body, signed(body, ts=TS - 10), [SECRET], NOW)
    with pytest.raises(SignatureError, match="tolerance is 10 s"):
        provider.verify(body, signed(body, ts=TS - 11), [SECRET], NOW)


def test_signature_list_with_several_entries_accepts_any_v1() -> None:
    body = fixture_bytes(PLATFORM, "store_cart_created.json")
    headers = signed(body)
    valid = headers["webhook-signature"]
    headers["webhook-signature"] = f"v1a,bm90LWEtc2lnbmF0dXJl v1,AAAA {valid}"
    BigCommerce().verify(body, headers, [SECRET], NOW)
    headers["webhook-signature"] = "v1a," + valid.removeprefix("v1,")
    with pytest.raises(SignatureError, match="no v1 signature"):
        BigCommerce().verify(body, headers, [SECRET], NOW)


# ----------------------------------------------------------------------------- custom header


def test_custom_header_secret() -> None:
    body = fixture_bytes(PLATFORM, "store_order_created.json")
    provider = BigCommerce()
    headers = signed(body, HEADER_SECRET)
    assert headers["x-shop-auth"] == "7c1f0e9a-only-we-know"
    assert "webhook-signature" not in headers
    provider.verify(body, headers, [HEADER_SECRET], NOW)
    provider.verify(body + b" ", headers, [HEADER_SECRET], NOW)  # a header signs nothing
    for value in ("7c1f0e9a-only-we-kno", "7c1f0e9a-only-we-know ", "", "X"):
        with pytest.raises(SignatureError, match="custom header"):
            provider.verify(body, {"x-shop-auth": value}, [HEADER_SECRET], NOW)
    with pytest.raises(SignatureError, match="custom header"):
        provider.verify(body, {}, [HEADER_SECRET], NOW)
    # A header secret and a client secret on one source: either scheme passes.
    both = [HEADER_SECRET, SECRET]
    provider.verify(body, headers, both, NOW)
    provider.verify(body, signed(body), both, NOW)
    with pytest.raises(SignatureError, match="does not match"):
        provider.verify(body, signed(body, "wrong"), both, NOW)


@pytest.mark.parametrize("secret", ["header:", "header:X-Auth", "header::value", "header:X-Auth:"])
def test_malformed_header_secret_verifies_nothing(secret: str) -> None:
    with pytest.raises(SignatureError, match="no usable secret"):
        BigCommerce().verify(b"{}", {"x-auth": "value"}, [secret], NOW)


# ----------------------------------------------------------------------------- delivery ids


def test_delivery_id_is_scope_time_and_hash() -> None:
    body = fixture_bytes(PLATFORM, "store_order_created.json")
    info = BigCommerce().delivery_info(body, signed(body), json.loads(body))
    assert info.topic == "store/order/created"
    assert (
        info.delivery_id
        == "store/order/created:1561479335:dd70c0976e06b67aaf671e73f49dcb79230ebf9d"
    )


def test_delivery_id_without_hash_is_the_webhook_id_then_the_body() -> None:
    payload = fixture_json(PLATFORM, "store_order_created.json")
    del payload["hash"]
    body = json.dumps(payload).encode()
    assert (
        BigCommerce().delivery_info(body, signed(body, msg="msg_9"), payload).delivery_id == "msg_9"
    )
    expected = "sha256:" + hashlib.sha256(body).hexdigest()
    assert BigCommerce().delivery_info(body, {}, payload).delivery_id == expected


def test_published_examples_sharing_a_hash_are_distinct_deliveries() -> None:
    names = ["store_cart_created.json", "store_cart_updated.json", "store_cart_abandoned.json"]
    payloads = [fixture_json(PLATFORM, name) for name in names]
    assert len({payload["hash"] for payload in payloads}) == 1
    ids = {BigCommerce().delivery_info(json.dumps(p).encode(), {}, p).delivery_id for p in payloads}
    assert len(ids) == 3


# ----------------------------------------------------------------------------- mapping

CART = "09346904-4175-44fd-be53-f7e598531b6c"

#: What each published example becomes: (kind, action, entity_id, created_at, updated_at,
#: cart_token, order_id, cancelled, deleted, abandoned) per event.
EXPECTED: dict[str, list[tuple[Any, ...]]] = {
    "store_cart_created.json": [
        ("cart", "create", CART, 1561482670, 1561482670, CART, None, False, False, False)
    ],
    "store_cart_updated.json": [
        ("cart", "update", CART, 1561482670, 1561482670, CART, None, False, False, False)
    ],
    "store_cart_abandoned.json": [
        ("cart", "abandon", CART, 1561482670, 1561482670, CART, None, False, False, True)
    ],
    "store_cart_converted.json": [
        (
            "cart", "convert", "d30016e2-23c0-4a90-884f-2e92ac135476", 1561486893, 1561486893,
            "d30016e2-23c0-4a90-884f-2e92ac135476", "252", False, False, False,
        ),
        (
            "order", "create", "252", 1561486893, 1561486893,
            "d30016e2-23c0-4a90-884f-2e92ac135476", "252", False, False, False,
        ),
    ],
    "store_order_created.json": [
        ("order", "create", "250", 1561479335, 1561479335, None, "250", False, False, False)
    ],
    "store_order_updated.json": [
        ("order", "update", "250", 1561479335, None, None, "250", False, False, False)
    ],
    "store_order_statusUpdated.json": [
        ("order", "update", "250", 1561479335, 1561479335, None, "250", False, False, False)
    ],
    "store_order_refund_created.json": [
        ("refund", "refund", "3", 1561479923, 1561479923, None, "250", False, False, False)
    ],
}  # fmt: skip


@pytest.mark.parametrize("name", FIXTURES)
def test_every_fixture_normalizes_field_by_field(name: str) -> None:
    payload = fixture_json(PLATFORM, name)
    events = normalize(payload)
    got = [
        (
            e.kind, e.action, e.entity_id,
            int(e.created_at.timestamp()) if e.created_at else None,
            int(e.updated_at.timestamp()) if e.updated_at else None,
            e.cart_token, e.order_id, e.cancelled, e.deleted, e.abandoned,
        )
        for e in events
    ]  # fmt: skip
    assert got == EXPECTED[name]
    for event in events:
        # Payloads carry ids only: no money, no currency, no test flag, no checkout.
        assert (event.gross_sales, event.discounts, event.refund_amount, event.currency) == (
            None, None, None, None,
        )  # fmt: skip
        assert (event.test, event.completed, event.checkout_token) == (False, False, None)
        if event.created_at is not None:
            assert event.created_at == at(payload["created_at"])


@pytest.mark.parametrize(
    ("status", "cancelled", "action"),
    [(5, True, "cancel"), (6, True, "cancel"), (0, True, "update"), (11, False, "update"),
     (10, False, "update"), (4, False, "update"), (14, False, "update")],
)  # fmt: skip
def test_status_updates_cancel_only_not_counted_statuses(
    status: int, cancelled: bool, action: str
) -> None:
    payload = fixture_json(PLATFORM, "store_order_statusUpdated.json")
    payload["data"]["status"]["new_status_id"] = status
    [event] = normalize(payload)
    assert (event.cancelled, event.action) == (cancelled, action)


def test_cart_deleted_and_line_item_scopes() -> None:
    base = fixture_json(PLATFORM, "store_cart_created.json")
    deleted = dict(copy.deepcopy(base), scope="store/cart/deleted")
    [event] = normalize(deleted)
    assert (event.kind, event.action, event.entity_id, event.deleted) == (
        "cart",
        "delete",
        CART,
        True,
    )
    item = dict(
        copy.deepcopy(base),
        scope="store/cart/lineItem/updated",
        data={"type": "cart_line_item", "id": "7c8c0ff8", "cartId": CART},
    )
    [event] = normalize(item)
    assert (event.kind, event.action, event.entity_id, event.cart_token) == (
        "cart",
        "update",
        CART,
        CART,
    )


def test_event_time_falls_back_to_the_signed_timestamp() -> None:
    payload = fixture_json(PLATFORM, "store_order_created.json")
    del payload["created_at"]
    [event] = normalize(payload, {"webhook-timestamp": str(TS)})
    assert event.created_at == event.updated_at == NOW
    with pytest.raises(UnusableDelivery, match="field 'created_at' is missing"):
        normalize(payload)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"scope": "store/product/updated"}, "unknown scope 'store/product/updated'"),
        ({"data": {"type": "order"}}, "field 'data.id' is missing"),
        ({"data": {"type": "order", "id": 250, "status": {"new_status_id": "5"}}},
         "field 'data.status.new_status_id' must be an integer"),
        ({"created_at": "yesterday"}, "field 'created_at' must be Unix seconds"),
        ({"data": None}, "field 'data' must be a JSON object"),
    ],
)  # fmt: skip
def test_unusable_payloads_name_the_field(change: dict[str, Any], reason: str) -> None:
    payload = fixture_json(PLATFORM, "store_order_statusUpdated.json")
    payload.update(change)
    with pytest.raises(UnusableDelivery, match=re.escape(reason)):
        normalize(payload)


# ----------------------------------------------------------------------------- through the app


def test_every_fixture_is_stored_with_its_events(client: TestClient) -> None:
    for index, name in enumerate(FIXTURES):
        body = fixture_bytes(PLATFORM, name)
        response = signed_post(client, SOURCE, PLATFORM, body, topic="", delivery_id=f"msg_{index}")
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "stored"
        assert response.json()["events"] == len(EXPECTED[name])
    deliveries = query(
        client, "SELECT delivery_id, topic, status, headers FROM deliveries ORDER BY delivery_seq"
    )
    assert [d["topic"] for d in deliveries] == [
        fixture_json(PLATFORM, n)["scope"] for n in FIXTURES
    ]
    for row, name in zip(deliveries, FIXTURES, strict=True):
        payload = fixture_json(PLATFORM, name)
        assert row["delivery_id"] == f"{payload['scope']}:{payload['created_at']}:{payload['hash']}"
        assert row["status"] == "accepted"
        kept = json.loads(row["headers"])
        assert kept["webhook-timestamp"] == str(TS)
        assert "webhook-signature" not in kept
    events = query(
        client,
        "SELECT kind, action, entity_id, epoch(created_at)::BIGINT AS created, "
        "epoch(updated_at)::BIGINT AS updated, cart_token, order_id, cancelled, deleted, "
        "abandoned FROM events ORDER BY event_seq",
    )
    expected = [row for name in FIXTURES for row in EXPECTED[name]]
    assert [tuple(e.values()) for e in events] == expected
    [money] = query(
        client,
        "SELECT count(gross_sales) AS g, count(discounts) AS d, count(currency) AS c FROM events",
    )
    assert money == {"g": 0, "d": 0, "c": 0}


def test_duplicate_hash_is_a_duplicate(client: TestClient) -> None:
    body = fixture_bytes(PLATFORM, "store_order_created.json")
    first = signed_post(client, SOURCE, PLATFORM, body, topic="", delivery_id="msg_a")
    again = signed_post(client, SOURCE, PLATFORM, body, topic="", delivery_id="msg_b")
    assert first.json()["status"] == "stored"
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"
    assert query(client, "SELECT count(*) AS n FROM deliveries") == [{"n": 1}]
    assert query(client, "SELECT count(*) AS n FROM events") == [{"n": 1}]


def test_rejections_through_the_app(client: TestClient, clock: FrozenClock) -> None:
    body = fixture_bytes(PLATFORM, "store_cart_created.json")
    headers = BigCommerce().sign(body, SECRET, topic="", delivery_id="m", timestamp=TS)
    tampered = client.post(
        f"/webhooks/{SOURCE}", content=body.replace(b"cart", b"CART"), headers=headers
    )
    assert tampered.status_code == 401
    wrong = signed_post(client, SOURCE, PLATFORM, body, topic="", delivery_id="m", secret="x")
    assert wrong.status_code == 401
    clock.now = NOW + timedelta(seconds=301)
    expired = signed_post(client, SOURCE, PLATFORM, body, topic="", delivery_id="m")
    assert expired.status_code == 401
    assert "old" in expired.json()["error"]["message"]
    clock.now = NOW
    rotated = signed_post(
        client, SOURCE, PLATFORM, body, topic="", delivery_id="m", secret=OTHER_SECRET
    )
    assert rotated.status_code == 200
    assert query(client, "SELECT count(*) AS n FROM deliveries") == [{"n": 1}]


def test_custom_header_source_through_the_app(client: TestClient) -> None:
    body = fixture_bytes(PLATFORM, "store_cart_converted.json")
    accepted = signed_post(
        client, HEADER_SOURCE, PLATFORM, body, topic="", delivery_id="m", secret=HEADER_SECRET
    )
    assert accepted.status_code == 200
    assert accepted.json()["events"] == 2
    refused = client.post(
        f"/webhooks/{HEADER_SOURCE}",
        content=body,
        headers={"Content-Type": "application/json", "X-Shop-Auth": "guess"},
    )
    assert refused.status_code == 401
    assert query(client, "SELECT count(*) AS n FROM deliveries") == [{"n": 1}]


def test_unusable_delivery_is_quarantined_with_its_reason(client: TestClient) -> None:
    payload = fixture_json(PLATFORM, "store_order_statusUpdated.json")
    payload["data"]["status"]["new_status_id"] = "Cancelled"
    body = json.dumps(payload).encode()
    response = signed_post(client, SOURCE, PLATFORM, body, topic="", delivery_id="m")
    assert response.status_code == 202
    reason = "field 'data.status.new_status_id' must be an integer"
    assert response.json()["reason"] == reason
    assert query(client, "SELECT status, reason FROM deliveries") == [
        {"status": "quarantined", "reason": reason}
    ]
