"""Standard Webhooks adapter: the published test vectors, the canonical event body and quarantine.

The signature tests use the vectors of tests/fixtures/signatures.json (the reference libraries'
own test vector, with the clock frozen at its timestamp); the body tests use
tests/fixtures/webhooks/standard/events.json, the example of docs/standard-webhooks.md.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ingest.events import CanonicalEvent
from ingest.providers import get_provider
from ingest.providers.base import SignatureError, UnusableDelivery
from ingest.providers.standard import StandardWebhooks
from ingest.sources import Source
from ingest.storage.body_codec import unpack
from shoppulse.service import create_app
from shoppulse.settings import Settings
from tests.conftest import FIXTURES as FIXTURE_DIR
from tests.conftest import WEBHOOKS, FrozenClock, fixture_bytes, fixture_json, make_source
from tests.helpers.app import query

PLATFORM = "standard"
SOURCE = "custom-store"
SECRET = "whsec_" + base64.b64encode(b"shoppulse-standard-key-0001").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"shoppulse-standard-key-0002").decode()
#: The service clock: after the example events (events over a day ahead of it are quarantined).
NOW = datetime(2026, 3, 6, tzinfo=UTC)
TS = int(NOW.timestamp())
FIXTURES = sorted(path.name for path in (WEBHOOKS / PLATFORM).glob("*.json"))


def vector(vector_id: str) -> dict[str, Any]:
    vectors = json.loads((FIXTURE_DIR / "signatures.json").read_text())["vectors"]
    [found] = [v for v in vectors if v["id"] == vector_id]
    return dict(found)


SIGN_VECTOR = vector("standard-webhooks-sign-v1")
BAD_VECTOR = vector("standard-webhooks-invalid-signature")


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def sources() -> dict[str, Source]:
    return {
        SOURCE: make_source(SOURCE, PLATFORM, SECRET, OTHER_SECRET),
        "vector": make_source("vector", PLATFORM, SIGN_VECTOR["secret"]),
    }


def signed(
    body: bytes, secret: str = SECRET, *, msg: str = "msg_1", ts: int = TS
) -> dict[str, str]:
    headers = StandardWebhooks().sign(body, secret, topic="events", delivery_id=msg, timestamp=ts)
    return {name.lower(): value for name, value in headers.items()}


def post(client: TestClient, body: bytes, *, msg: str, secret: str = SECRET, ts: int = TS) -> Any:
    headers = StandardWebhooks().sign(body, secret, topic="events", delivery_id=msg, timestamp=ts)
    return client.post(f"/webhooks/{SOURCE}", content=body, headers=headers)


# ----------------------------------------------------------------------------- published vectors


def test_sign_reproduces_the_published_vector() -> None:
    v = SIGN_VECTOR
    stamp = int(v["headers"]["webhook-timestamp"])
    headers = signed(v["payload"].encode(), v["secret"], msg=v["headers"]["webhook-id"], ts=stamp)
    assert headers["webhook-signature"] == v["expected_signature"]
    assert (
        f"{headers['webhook-id']}.{headers['webhook-timestamp']}.{v['payload']}"
        == (v["signed_content"])
    )


@pytest.mark.parametrize("prefix", ["", "whsec_"])
def test_published_vector_verifies_at_its_timestamp_with_or_without_prefix(prefix: str) -> None:
    v = SIGN_VECTOR
    secret = prefix + v["secret"].removeprefix("whsec_")
    headers = dict(v["headers"], **{"webhook-signature": v["expected_signature"]})
    signed_at = datetime.fromtimestamp(int(v["headers"]["webhook-timestamp"]), UTC)
    StandardWebhooks().verify(v["payload"].encode(), headers, [secret], signed_at)
    with pytest.raises(SignatureError, match="old"):
        StandardWebhooks().verify(
            v["payload"].encode(), headers, [secret], signed_at + timedelta(seconds=301)
        )


def test_published_invalid_signature_is_rejected() -> None:
    v = BAD_VECTOR
    headers = dict(
        v["headers"],
        **{
            "webhook-timestamp": SIGN_VECTOR["headers"]["webhook-timestamp"],
            "webhook-signature": v["bad_signature"],
        },
    )
    signed_at = datetime.fromtimestamp(int(headers["webhook-timestamp"]), UTC)
    with pytest.raises(SignatureError, match="does not match"):
        StandardWebhooks().verify(v["payload"].encode(), headers, [v["secret"]], signed_at)


def test_published_vector_through_the_app_is_authentic_but_not_canonical(
    client: TestClient, clock: FrozenClock
) -> None:
    v = SIGN_VECTOR
    clock.now = datetime.fromtimestamp(int(v["headers"]["webhook-timestamp"]), UTC)
    headers = dict(v["headers"], **{"webhook-signature": v["expected_signature"]})
    headers["Content-Type"] = "application/json"
    response = client.post("/webhooks/vector", content=v["payload"].encode(), headers=headers)
    assert response.status_code == 202
    reason = response.json()["reason"]
    assert reason == "invalid events: Field required; test: Extra inputs are not permitted"
    assert query(client, "SELECT delivery_id, topic, status FROM deliveries") == [
        {"delivery_id": v["headers"]["webhook-id"], "topic": "events", "status": "quarantined"}
    ]
    clock.now += timedelta(seconds=301)
    late = client.post("/webhooks/vector", content=v["payload"].encode(), headers=headers)
    assert late.status_code == 401


# ----------------------------------------------------------------------------- signature


@pytest.mark.parametrize("name", FIXTURES)
def test_signature_of_every_fixture(name: str) -> None:
    body = fixture_bytes(PLATFORM, name)
    headers = signed(body)
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    expected = hmac.new(key, f"msg_1.{TS}.".encode() + body, hashlib.sha256).digest()
    assert headers["webhook-signature"] == "v1," + base64.b64encode(expected).decode()
    provider = StandardWebhooks()
    provider.verify(body, headers, [SECRET], NOW)
    tampered = body.replace(b'"119.80"', b'"1119.80"')
    assert tampered != body
    with pytest.raises(SignatureError, match="does not match"):
        provider.verify(tampered, headers, [SECRET], NOW)
    with pytest.raises(SignatureError, match="does not match"):
        provider.verify(body, headers, [OTHER_SECRET], NOW)
    provider.verify(body, signed(body, OTHER_SECRET), [SECRET, OTHER_SECRET], NOW)
    with pytest.raises(SignatureError, match="301 s old"):
        provider.verify(body, signed(body, ts=TS - 301), [SECRET], NOW)
    with pytest.raises(SignatureError, match="in the future"):
        provider.verify(body, signed(body, ts=TS + 301), [SECRET], NOW)
    other_id = dict(headers, **{"webhook-id": "msg_2"})
    with pytest.raises(SignatureError, match="does not match"):
        provider.verify(body, other_id, [SECRET], NOW)


def test_space_separated_signatures_accept_any_v1() -> None:
    body = fixture_bytes(PLATFORM, "events.json")
    headers = signed(body)
    mine = headers["webhook-signature"]
    theirs = signed(body, OTHER_SECRET)["webhook-signature"]
    headers["webhook-signature"] = f"v1a,c2lnbmF0dXJl {theirs} {mine}"
    StandardWebhooks().verify(body, headers, [SECRET], NOW)


@pytest.mark.parametrize(
    ("drop", "reason"),
    [("webhook-id", "missing webhook-id"), ("webhook-timestamp", "missing webhook-timestamp"),
     ("webhook-signature", "missing webhook-signature")],
)  # fmt: skip
def test_missing_headers_are_rejected(drop: str, reason: str) -> None:
    body = fixture_bytes(PLATFORM, "events.json")
    headers = signed(body)
    del headers[drop]
    with pytest.raises(SignatureError, match=reason):
        StandardWebhooks().verify(body, headers, [SECRET], NOW)


def test_timestamp_must_be_unix_seconds() -> None:
    body = fixture_bytes(PLATFORM, "events.json")
    headers = signed(body)
    headers["webhook-timestamp"] = "2026-01-01T00:00:00Z"
    with pytest.raises(SignatureError):
        StandardWebhooks().verify(body, headers, [SECRET], NOW)


def test_malformed_secrets_verify_nothing() -> None:
    body = fixture_bytes(PLATFORM, "events.json")
    with pytest.raises(SignatureError, match="no configured secret"):
        StandardWebhooks().verify(body, signed(body), ["whsec_not base64!", "whsec_"], NOW)
    # A malformed secret beside a good one does not stop the good one.
    StandardWebhooks().verify(body, signed(body), ["whsec_not base64!", SECRET], NOW)


def test_tolerance_comes_from_the_settings(tmp_path: Any) -> None:
    provider = get_provider(
        PLATFORM, Settings(db_path=tmp_path / "x", signature_tolerance_seconds=60)
    )
    body = fixture_bytes(PLATFORM, "events.json")
    provider.verify(body, signed(body, ts=TS - 60), [SECRET], NOW)
    with pytest.raises(SignatureError, match="tolerance is 60 s"):
        provider.verify(body, signed(body, ts=TS - 61), [SECRET], NOW)


# ----------------------------------------------------------------------------- body


def normalize(payload: Any) -> list[CanonicalEvent]:
    return StandardWebhooks().normalize("events", payload, {})


def test_delivery_id_is_the_webhook_id_and_topic_is_events() -> None:
    body = fixture_bytes(PLATFORM, "events.json")
    info = StandardWebhooks().delivery_info(body, signed(body, msg="msg_77"), json.loads(body))
    assert (info.delivery_id, info.topic) == ("msg_77", "events")
    expected = "sha256:" + hashlib.sha256(body).hexdigest()
    assert StandardWebhooks().delivery_info(body, {}, None).delivery_id == expected


@pytest.mark.parametrize("name", FIXTURES)
def test_every_fixture_normalizes_field_by_field(name: str) -> None:
    payload = fixture_json(PLATFORM, name)
    events = normalize(payload)
    assert len(events) == len(payload["events"])
    for event, sent in zip(events, payload["events"], strict=True):
        for field, value in sent.items():
            got = getattr(event, field)
            if field in ("created_at", "updated_at"):
                expected = datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
                assert got == expected and got.utcoffset() == timedelta(0)
            elif field in ("gross_sales", "discounts", "refund_amount"):
                assert got == Decimal(value)
            elif field == "lines":
                assert [line.model_dump(exclude_unset=True) for line in got] == [
                    {
                        k: Decimal(v) if k in ("unit_price", "discount") else v
                        for k, v in sent.items()
                    }
                    for sent in value
                ]
            else:
                assert got == value, field
    order = events[2]
    assert order.created_at == datetime(2026, 3, 2, 9, 22, 17, tzinfo=UTC)
    assert (order.gross_sales, order.discounts) == (Decimal("119.80"), Decimal("12.00"))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"gross_sales": "a lot"}, "invalid events.2.gross_sales: Input should be a valid decimal"),
        ({"test": "maybe"}, "invalid events.2.test: Input should be a valid boolean"),
        ({"kind": "invoice"}, "invalid events.2.kind: Input should be 'cart', 'checkout'"),
        ({"currency": "eur"}, "invalid events.2.currency: String should match pattern"),
        ({"created_at": "2026-03-02T10:22:17"},
         "invalid events.2.created_at: Value error, timestamp must carry a UTC offset"),
        ({"discounts": "0.00001"},
         "invalid events.2.discounts: Value error, money has more than 4 decimal places"),
        ({"colour": "red"}, "invalid events.2.colour: Extra inputs are not permitted"),
    ],
)  # fmt: skip
def test_invalid_fields_are_unusable_with_their_path(change: dict[str, Any], reason: str) -> None:
    payload = copy.deepcopy(fixture_json(PLATFORM, "events.json"))
    payload["events"][2].update(change)
    with pytest.raises(UnusableDelivery, match=re.escape(reason)):
        normalize(payload)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [({"events": []}, "invalid events: List should have at least 1 item"),
     ([], "invalid body: Input should be a valid dictionary"),
     ({"events": [{}]}, "invalid events.0.kind: Field required; events.0.action: Field required; "
                        "events.0.entity_id: Field required")],
)  # fmt: skip
def test_invalid_bodies(payload: Any, reason: str) -> None:
    with pytest.raises(UnusableDelivery, match=re.escape(reason)):
        normalize(payload)


def test_many_problems_are_summarised() -> None:
    payload = {"events": [{"kind": "x", "action": "y", "entity_id": ""}, {}]}
    with pytest.raises(UnusableDelivery, match=r"; and \d+ more$"):
        normalize(payload)


# ----------------------------------------------------------------------------- through the app


def test_events_are_stored_field_by_field(client: TestClient) -> None:
    body = fixture_bytes(PLATFORM, "events.json")
    response = post(client, body, msg="msg_flow_1")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "stored", "source": SOURCE, "delivery_id": "msg_flow_1", "events": 4,
    }  # fmt: skip
    again = post(client, body, msg="msg_flow_1")
    assert again.json()["status"] == "duplicate"
    rows = query(
        client,
        "SELECT kind, action, entity_id, epoch(created_at)::BIGINT AS created, cart_token, "
        "checkout_token, order_id, currency, gross_sales, discounts, refund_amount, test "
        "FROM events ORDER BY event_seq",
    )
    sent = fixture_json(PLATFORM, "events.json")["events"]
    assert [row["entity_id"] for row in rows] == [event["entity_id"] for event in sent]
    assert rows[2] == {
        "kind": "order", "action": "paid", "entity_id": "1001",
        "created": int(datetime(2026, 3, 2, 9, 22, 17, tzinfo=UTC).timestamp()),
        "cart_token": "cart-8f2a", "checkout_token": "chk-31c7", "order_id": "1001",
        "currency": "EUR", "gross_sales": Decimal("119.8000"), "discounts": Decimal("12.0000"),
        "refund_amount": None, "test": False,
    }  # fmt: skip
    assert rows[3]["refund_amount"] == Decimal("59.9000")
    [delivery] = query(client, "SELECT topic, event_count, headers FROM deliveries")
    assert (delivery["topic"], delivery["event_count"]) == ("events", 4)
    assert json.loads(delivery["headers"])["webhook-id"] == "msg_flow_1"


def test_wrong_field_type_is_quarantined_naming_the_field(client: TestClient) -> None:
    payload = fixture_json(PLATFORM, "events.json")
    payload["events"][1]["test"] = "sometimes"
    body = json.dumps(payload).encode()
    response = post(client, body, msg="msg_bad")
    assert response.status_code == 202
    reason = "invalid events.1.test: Input should be a valid boolean, unable to interpret input"
    assert response.json()["reason"] == reason
    [row] = query(client, "SELECT status, reason, event_count, body, body_codec FROM deliveries")
    assert (row["status"], row["reason"], row["event_count"]) == ("quarantined", reason, 0)
    assert unpack(row["body"], row["body_codec"]) == body
    assert query(client, "SELECT count(*) AS n FROM events") == [{"n": 0}]


def test_rejections_through_the_app(client: TestClient) -> None:
    body = fixture_bytes(PLATFORM, "events.json")
    headers = StandardWebhooks().sign(body, SECRET, topic="events", delivery_id="m", timestamp=TS)
    tampered = client.post(f"/webhooks/{SOURCE}", content=body + b" ", headers=headers)
    assert tampered.status_code == 401
    wrong_key = "whsec_" + base64.b64encode(b"someone-else").decode()
    assert post(client, body, msg="m", secret=wrong_key).status_code == 401
    assert post(client, body, msg="m", ts=TS - 301).status_code == 401
    assert query(client, "SELECT count(*) AS n FROM deliveries") == [{"n": 0}]
    assert post(client, body, msg="m", secret=OTHER_SECRET).status_code == 200


def test_the_service_uses_the_configured_tolerance(
    tmp_path: Path, sources: dict[str, Source]
) -> None:
    settings = Settings(db_path=tmp_path / "db.duckdb", signature_tolerance_seconds=30)
    body = fixture_bytes(PLATFORM, "events.json")
    with TestClient(create_app(settings, sources, clock=FrozenClock(NOW))) as client:
        assert post(client, body, msg="m1", ts=TS - 31).status_code == 401
        assert post(client, body, msg="m2", ts=TS - 30).status_code == 200
