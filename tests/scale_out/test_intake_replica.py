"""An intake replica answers exactly as the embedded service does, but its durable step is the
log's acknowledgement: real nats-server, the real app through FastAPI's TestClient."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ingest.providers import get_provider
from shoppulse.scale_out import envelope
from shoppulse.scale_out.intake_app import create_intake_app
from shoppulse.scale_out.settings import STREAM
from shoppulse.scale_out.stream import StreamSpec
from shoppulse.service import create_app
from shoppulse.settings import Settings
from tests.conftest import SECRET, FrozenClock, fixture_bytes, make_source
from tests.scale_out.nats import NatsNode, create_stream
from tests.scale_out.signed import signed_settings
from tests.scale_out.stream_reader import read_stream

pytestmark = pytest.mark.timeout(60)

SHOPIFY = get_provider("shopify")
CART = fixture_bytes("shopify", "carts_create.json")
ORDER = fixture_bytes("shopify", "orders_create.json")  # 14.9 KB: over the 4 KiB limit below
SOURCES = {"acme": make_source("acme", "shopify", SECRET)}


def signed(
    body: bytes, delivery_id: str, *, secret: str = SECRET, topic: str = "carts/create"
) -> dict[str, str]:
    return SHOPIFY.sign(body, secret, topic=topic, delivery_id=delivery_id, timestamp=0)


def requests() -> list[tuple[str, bytes, dict[str, str]]]:
    """One of each answer: stored, duplicate, quarantined, 401 twice, 404, 415, 413."""
    unsigned = {"content-type": "application/json", "x-shopify-topic": "carts/create"}
    return [
        ("/webhooks/acme", CART, signed(CART, "d1")),
        ("/webhooks/acme", CART, signed(CART, "d1")),
        ("/webhooks/acme", b"{not json", signed(b"{not json", "d2")),
        ("/webhooks/acme", CART, signed(CART, "d3", secret="wrong")),
        ("/webhooks/acme", CART, unsigned),
        ("/webhooks/nope", CART, signed(CART, "d4")),
        ("/webhooks/acme", CART, {**signed(CART, "d5"), "content-type": "text/plain"}),
        ("/webhooks/acme", ORDER, signed(ORDER, "d6", topic="orders/create")),
    ]


def answers(client: TestClient) -> list[tuple[int, Any, str | None]]:
    found = []
    for path, body, headers in requests():
        response = client.post(path, content=body, headers=headers)
        found.append((response.status_code, response.json(), response.headers.get("retry-after")))
    return found


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(db_path=tmp_path / "embedded" / "shoppulse.duckdb", max_body_bytes=4096)


@pytest.fixture
def replica(nats_node: NatsNode, settings: Settings) -> Iterator[TestClient]:
    app = create_intake_app(settings, signed_settings(url=nats_node.url), SOURCES, FrozenClock())
    with TestClient(app) as client:
        yield client


def test_same_answers_as_the_embedded_service_and_the_log_holds_the_deliveries(
    nats_node: NatsNode, settings: Settings
) -> None:
    with TestClient(create_app(settings, SOURCES, clock=FrozenClock())) as embedded:
        expected = answers(embedded)
    app = create_intake_app(settings, signed_settings(url=nats_node.url), SOURCES, FrozenClock())
    with TestClient(app) as replica:
        got = answers(replica)
    assert [status for status, _, _ in got] == [200, 200, 202, 401, 401, 404, 415, 413]
    assert got == expected

    messages = read_stream(nats_node.url)
    deliveries = [m for m in messages if m.subject == "shoppulse.deliveries.acme"]
    assert [m.msg_id for m in deliveries] == ["acme:d1", "acme:d2"]
    stored, quarantined = (envelope.decode(m.data) for m in deliveries)
    assert stored.body == CART and stored.reason is None and len(stored.events) == 1
    assert quarantined.body == b"{not json" and quarantined.reason is not None
    assert quarantined.reason.startswith("invalid JSON")

    counts: Counter[tuple[str, str, str]] = Counter()
    for message in messages:
        if message.subject.startswith("shoppulse.rejections."):
            source = message.subject.rsplit(".", 1)[1]
            for outcome, reason, count in envelope.decode_counts(message.data):
                counts[(source, outcome, reason)] += count
    assert counts == {
        ("acme", "duplicate", ""): 1,
        ("acme", "rejected", "invalid_signature"): 2,
        ("acme", "rejected", "unsupported_media_type"): 1,
        ("acme", "rejected", "body_too_large"): 1,
        ("_unknown", "rejected", "unknown_source"): 1,
    }


def test_a_full_stream_answers_503_and_keeps_every_acknowledged_delivery(
    bare_nats: NatsNode, settings: Settings
) -> None:
    create_stream(bare_nats.url, StreamSpec(STREAM, max_bytes=48 * 1024))
    app = create_intake_app(settings, signed_settings(url=bare_nats.url), SOURCES, FrozenClock())
    acknowledged = []
    with TestClient(app) as replica:
        for n in range(60):
            response = replica.post("/webhooks/acme", content=CART, headers=signed(CART, f"f{n}"))
            if response.status_code == 503:
                break
            assert response.status_code == 200, response.text
            acknowledged.append(f"acme:f{n}")
        else:
            pytest.fail("the stream never filled up")
        assert response.headers["retry-after"] == "5"
        error = response.json()["error"]
        assert error["code"] == "unavailable"
        assert "the log refused the delivery" in error["message"]
        assert replica.get("/readyz").status_code == 503
    assert len(acknowledged) >= 10
    held = [m.msg_id for m in read_stream(bare_nats.url) if m.subject.startswith("shoppulse.del")]
    assert held == acknowledged


def test_an_unreachable_log_answers_503_until_it_is_back(
    nats_node: NatsNode, replica: TestClient
) -> None:
    assert (
        replica.post("/webhooks/acme", content=CART, headers=signed(CART, "u1")).status_code == 200
    )
    nats_node.stop()
    response = replica.post("/webhooks/acme", content=CART, headers=signed(CART, "u2"))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert "unreachable" in response.json()["error"]["message"]
    ready = replica.get("/readyz")
    assert ready.status_code == 503 and "unreachable" in ready.json()["error"]["message"]

    nats_node.start()
    deadline = time.monotonic() + 15
    while replica.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "the replica did not reconnect"
        time.sleep(0.1)
    again = replica.post("/webhooks/acme", content=CART, headers=signed(CART, "u2"))
    assert again.status_code == 200 and again.json()["status"] == "stored"
    held = [m.msg_id for m in read_stream(nats_node.url) if m.subject.startswith("shoppulse.del")]
    assert held == ["acme:u1", "acme:u2"]
