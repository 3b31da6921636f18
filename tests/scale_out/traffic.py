"""Deliveries for the scale-out tests: the seeded store simulator's stream, signed for `acme`,
and a wait that is always bounded."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from fastapi.testclient import TestClient

from ingest.providers import get_provider
from shoppulse.simulator import Mix, SimDelivery, SimulationConfig, Simulator, take
from tests.conftest import SECRET

SHOPIFY = get_provider("shopify")
#: The simulated traffic starts here; tests run their clocks a day later (nothing in the future).
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def simulated(
    count: int, *, seed: int = 14, sources: tuple[str, ...] = ("acme",), mix: Mix | None = None
) -> list[SimDelivery]:
    """`count` deliveries of the simulator (duplicates, stale versions, unusable bodies included),
    then every journey in flight finished."""
    sim = Simulator(SimulationConfig(seed=seed, start=START, sources=sources, mix=mix or Mix()))
    return [*take(sim, count=count), *sim.drain()]


def headers(delivery: SimDelivery) -> dict[str, str]:
    return SHOPIFY.sign(
        delivery.body, SECRET, topic=delivery.topic, delivery_id=delivery.delivery_id, timestamp=0
    )


def post(client: TestClient | httpx.Client, delivery: SimDelivery) -> httpx.Response:
    return client.post(
        f"/webhooks/{delivery.source}", content=delivery.body, headers=headers(delivery)
    )
