"""Edge cases of the signature schemes, each a documented rule (docs/security.md), through the
real app and DuckDB file: repeated headers, the timestamp's spelling, Svix-branded headers, the
caps on listed signatures and a non-ASCII message id."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from ingest.providers import _standard_webhooks as swh
from ingest.providers import get_provider
from ingest.providers.stripe import _expected as stripe_signature
from shoppulse.service import create_app
from shoppulse.settings import Settings
from tests.conftest import SECRET, FrozenClock, fixture_bytes, make_source

STANDARD_SECRET = "whsec_" + base64.b64encode(b"shoppulse-edge-cases-key-001").decode()
KEY = swh.decode_secret(STANDARD_SECRET)
NOW = datetime(2026, 3, 6, tzinfo=UTC)
TS = str(int(NOW.timestamp()))
EVENTS = orjson.dumps(
    {
        "events": [
            {
                "kind": "cart",
                "action": "create",
                "entity_id": "cart-1",
                "created_at": "2026-03-05T16:00:00Z",
                "updated_at": "2026-03-05T16:00:00Z",
            }
        ]
    }
)
STRIPE_BODY = fixture_bytes("stripe", "checkout.session.completed.json")
SHOPIFY_BODY = fixture_bytes("shopify", "carts_create.json")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(db_path=tmp_path_factory.mktemp("edges") / "db.duckdb", batch_linger_ms=0.5)
    sources = {
        "custom": make_source("custom", "standard", STANDARD_SECRET),
        "pay": make_source("pay", "stripe", SECRET),
        "acme": make_source("acme", "shopify", SECRET),
        "woo": make_source("woo", "woocommerce", SECRET),
    }
    with TestClient(create_app(settings, sources, clock=FrozenClock(NOW))) as test_client:
        yield test_client


def standard_headers(msg: str, stamp: str = TS, body: bytes = EVENTS) -> list[tuple[str, str]]:
    return [
        ("content-type", "application/json"),
        ("webhook-id", msg),
        ("webhook-timestamp", stamp),
        ("webhook-signature", "v1," + swh.signature(KEY, msg, stamp, body)),
    ]


def post(client: TestClient, source: str, headers: Any, body: bytes = EVENTS) -> Any:
    return client.post(f"/webhooks/{source}", content=body, headers=headers)


def refused(answer: Any, words: str) -> None:
    assert answer.status_code == 401, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_signature"
    assert words in error["message"], error["message"]


def stripe_headers(signature: str) -> dict[str, str]:
    return {"Content-Type": "application/json", "Stripe-Signature": signature}


# ----------------------------------------------------------------------------- repeated headers


@pytest.mark.parametrize("valid_first", [True, False])
def test_a_repeated_signature_header_is_refused_whichever_line_is_valid(
    client: TestClient, valid_first: bool
) -> None:
    headers = standard_headers("msg-twice")
    valid = headers.pop()
    invalid = ("webhook-signature", "v1," + base64.b64encode(b"x" * 32).decode())
    headers += [valid, invalid] if valid_first else [invalid, valid]
    refused(post(client, "custom", headers), "header webhook-signature is sent more than once")


@pytest.mark.parametrize("name", ["webhook-id", "webhook-timestamp"])
def test_a_repeated_id_or_timestamp_header_is_refused(client: TestClient, name: str) -> None:
    headers = standard_headers("msg-repeat")
    headers.append(next(pair for pair in headers if pair[0] == name))  # even the same value
    refused(post(client, "custom", headers), f"header {name} is sent more than once")


def test_repeated_shopify_stripe_and_woocommerce_headers_are_refused(client: TestClient) -> None:
    shopify = list(
        get_provider("shopify")
        .sign(SHOPIFY_BODY, SECRET, topic="carts/create", delivery_id="d", timestamp=0)
        .items()
    )
    shopify.append(("X-Shopify-Topic", "orders/delete"))
    refused(post(client, "acme", shopify, SHOPIFY_BODY), "x-shopify-topic is sent more than once")
    stripe = list(
        get_provider("stripe")
        .sign(STRIPE_BODY, SECRET, topic="", delivery_id="", timestamp=int(TS))
        .items()
    )
    stripe.append(stripe[1])
    refused(post(client, "pay", stripe, STRIPE_BODY), "stripe-signature is sent more than once")
    woo_body = fixture_bytes("woocommerce", "order.updated.json")
    woo = list(
        get_provider("woocommerce")
        .sign(woo_body, SECRET, topic="order.updated", delivery_id="d", timestamp=0)
        .items()
    )
    woo.append(("X-WC-Webhook-Signature", dict(woo)["X-WC-Webhook-Signature"]))
    refused(post(client, "woo", woo, woo_body), "x-wc-webhook-signature is sent more than once")


# ----------------------------------------------------------------------------- timestamps


@pytest.mark.parametrize("stamp", ["+" + TS, "0" + TS, TS + "x", "-" + TS, TS + ".0"])
def test_a_timestamp_must_be_a_plain_decimal_integer(client: TestClient, stamp: str) -> None:
    """Signed exactly as sent, so only the spelling is wrong: what is signed is what is checked."""
    refused(post(client, "custom", standard_headers(f"msg-{stamp}", stamp)), "plain decimal")


@pytest.mark.parametrize("stamp", ["+" + TS, "0" + TS])
def test_a_stripe_timestamp_must_be_a_plain_decimal_integer(client: TestClient, stamp: str) -> None:
    header = f"t={stamp},v1={stripe_signature(SECRET, stamp, STRIPE_BODY)}"
    refused(post(client, "pay", stripe_headers(header), STRIPE_BODY), "plain decimal")


def test_two_stripe_timestamps_in_one_header_are_refused(client: TestClient) -> None:
    header = f"t={TS},v1={stripe_signature(SECRET, TS, STRIPE_BODY)},t=1"
    refused(post(client, "pay", stripe_headers(header), STRIPE_BODY), "more than one t=")


# ----------------------------------------------------------------------------- Svix headers


def test_svix_branded_headers_are_the_same_scheme(client: TestClient) -> None:
    headers = [
        (name.replace("webhook-", "svix-"), value) for name, value in standard_headers("msg_svix_1")
    ]
    answer = post(client, "custom", headers)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "status": "stored",
        "source": "custom",
        "delivery_id": "msg_svix_1",
        "events": 1,
    }
    assert post(client, "custom", headers).json()["status"] == "duplicate"  # keyed by svix-id
    tampered = [(n, v + "0" if n == "svix-timestamp" else v) for n, v in headers]
    refused(post(client, "custom", tampered), "svix-signature does not match")


# ----------------------------------------------------------------------------- caps


def listed(count: int, valid_at: int) -> str:
    """`count` v1 entries, the valid one at position `valid_at` (1-based)."""
    wrong = "v1," + base64.b64encode(b"w" * 32).decode()
    right = "v1," + swh.signature(KEY, f"msg-cap-{count}-{valid_at}", TS, EVENTS)
    return " ".join(right if i == valid_at else wrong for i in range(1, count + 1))


def test_only_the_first_16_listed_signatures_are_read(client: TestClient) -> None:
    for count, valid_at, status in ((16, 16, 200), (17, 17, 401)):
        headers = dict(standard_headers(f"msg-cap-{count}-{valid_at}"))
        headers["webhook-signature"] = listed(count, valid_at)
        assert post(client, "custom", headers).status_code == status


def test_only_the_first_32_stripe_signature_items_are_read(client: TestClient) -> None:
    right = f"v1={stripe_signature(SECRET, TS, STRIPE_BODY)}"
    for fillers, status in ((30, 200), (31, 401)):  # t, fillers, then the valid v1
        header = ",".join([f"t={TS}", *["v0=00"] * fillers, right])
        answer = post(client, "pay", stripe_headers(header), STRIPE_BODY)
        assert answer.status_code == status, answer.text


# ----------------------------------------------------------------------------- message ids


def test_a_non_ascii_message_id_is_refused_with_its_reason(client: TestClient) -> None:
    msg = "msg_é"  # a sender signs the UTF-8 text; the server reads header bytes as latin-1
    headers = standard_headers(msg)
    raw = [(name, value.encode("utf-8")) for name, value in headers]
    refused(post(client, "custom", raw), "webhook-id must be ASCII")
