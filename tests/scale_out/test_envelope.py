"""A delivery survives the trip through a log message unchanged (events of every platform)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from ingest.providers import get_provider
from ingest.storage.writer import Delivery
from shoppulse.scale_out import envelope
from tests.conftest import fixture_bytes

SAMPLES = [
    ("shopify", "orders_create.json", "orders/create"),
    ("shopify", "refunds_create.json", "refunds/create"),
    ("shopify", "checkouts_update.json", "checkouts/update"),
    ("woocommerce", "order.created.json", "order.created"),
]


@pytest.mark.parametrize(("platform", "name", "topic"), SAMPLES)
def test_a_delivery_comes_back_as_it_was_sent(platform: str, name: str, topic: str) -> None:
    body = fixture_bytes(platform, name)
    payload: Any = orjson.loads(body)
    events = get_provider(platform).normalize(topic, payload, {})
    assert events
    delivery = Delivery(
        "acme", "d-1", topic, datetime(2026, 3, 1, tzinfo=UTC), '{"x": "1"}', body, None, events
    )
    back = envelope.decode(envelope.encode(delivery))
    assert back == delivery
    assert [e.model_dump() for e in back.events] == [e.model_dump() for e in events]


def test_quarantined_without_body_and_malformed() -> None:
    delivery = Delivery("acme", "d-2", "x", datetime(2026, 3, 1, tzinfo=UTC), "{}", None, "why")
    assert envelope.decode(envelope.encode(delivery)) == delivery
    for bad in (b"", b"\x00\x00\x00\x05{nope", b"\x00\x00\x00\x02{}"):
        with pytest.raises(envelope.MalformedMessage):
            envelope.decode(bad)
