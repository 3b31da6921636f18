"""Replayed deliveries. A captured delivery of a platform that signs a timestamp (Stripe, Standard
Webhooks, BigCommerce) re-sent after the tolerance window is rejected, however authentic its
bytes; a platform retry hours later (Shopify, WooCommerce) is a duplicate, never a new event."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import FrozenClock
from tests.fuzz.adapters import NOW, TIMESTAMP, samples, service, sign
from tests.helpers.app import rows, stored_figures

TOLERANCE = 300
TIMESTAMPED = ["stripe", "standard", "bigcommerce"]


def stored(client: TestClient) -> tuple[int, int]:
    [(deliveries, events)] = rows(
        client, "SELECT (SELECT count(*) FROM deliveries), (SELECT count(*) FROM events)"
    )
    return int(deliveries), int(events)


def accepted_sample(provider: str) -> Any:
    """A sample of `provider` that the service stores (not one that goes to quarantine)."""
    return next(s for s in samples(provider) if "data-object" not in s.name)


@pytest.mark.parametrize("provider", TIMESTAMPED)
def test_a_captured_delivery_resent_after_the_tolerance_is_rejected(
    provider: str, tmp_path: Path
) -> None:
    clock = FrozenClock(NOW)
    sample = accepted_sample(provider)
    headers = sign(provider, sample.body, topic=sample.topic, delivery_id="captured")
    with service(tmp_path, clock=clock) as client:
        first = client.post(f"/webhooks/{provider}", content=sample.body, headers=headers)
        assert first.status_code == 200 and first.json()["status"] == "stored", first.text
        after_first = stored(client), stored_figures(client)

        clock.now = NOW + timedelta(seconds=60)  # a retry within the window: a duplicate
        again = client.post(f"/webhooks/{provider}", content=sample.body, headers=headers)
        assert again.status_code == 200 and again.json()["status"] == "duplicate"

        clock.now = NOW + timedelta(seconds=TOLERANCE + 1)  # the capture replayed later
        replayed = client.post(f"/webhooks/{provider}", content=sample.body, headers=headers)
        assert replayed.status_code == 401, replayed.text
        assert replayed.json()["error"]["code"] == "invalid_signature"
        # Signed too far in the future is refused the same way (a clock set ahead).
        ahead = sign(
            provider,
            sample.body,
            topic=sample.topic,
            delivery_id="ahead",
            timestamp=int(clock.now.timestamp()) + TOLERANCE + 1,
        )
        assert (
            client.post(f"/webhooks/{provider}", content=sample.body, headers=ahead).status_code
            == 401
        )
        assert (stored(client), stored_figures(client)) == after_first


@pytest.mark.parametrize("provider", ["shopify", "woocommerce"])
def test_a_retry_hours_later_is_a_duplicate(provider: str, tmp_path: Path) -> None:
    clock = FrozenClock(NOW)
    sample = accepted_sample(provider)
    with service(tmp_path, clock=clock) as client:
        headers = sign(provider, sample.body, topic=sample.topic, delivery_id="attempt-1")
        first = client.post(f"/webhooks/{provider}", content=sample.body, headers=headers)
        assert first.status_code == 200 and first.json()["status"] == "stored", first.text
        after_first = stored(client), stored_figures(client)

        clock.now = NOW + timedelta(hours=5)
        # Shopify re-sends the same webhook id; WooCommerce makes a new delivery id per attempt,
        # and ShopPulse identifies its deliveries by the order version instead.
        retry_id = "attempt-1" if provider == "shopify" else "attempt-2"
        retry = sign(
            provider,
            sample.body,
            topic=sample.topic,
            delivery_id=retry_id,
            timestamp=TIMESTAMP + 5 * 3600,
        )
        again = client.post(f"/webhooks/{provider}", content=sample.body, headers=retry)
        assert again.status_code == 200, again.text
        assert again.json() == {
            "status": "duplicate",
            "source": provider,
            "delivery_id": first.json()["delivery_id"],
        }
        assert (stored(client), stored_figures(client)) == after_first
        stats = client.get("/api/v1/ingest/stats").json()["sources"][provider]
        assert stats["accepted"] == 1 and stats["duplicate"] == 1
