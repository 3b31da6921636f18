"""The raw-body retention purge: old accepted bodies are cleared, everything else is kept."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

from fastapi.testclient import TestClient

from ingest.sources import Source
from ingest.storage.retention import purge_raw_bodies
from shoppulse.service import create_app
from shoppulse.settings import Settings
from tests.conftest import FrozenClock, fixture_bytes, signed_post
from tests.helpers.app import rows, service_of, state_of

ORDER = fixture_bytes("shopify", "orders_create.json")
WAIT = 10.0


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"not within {WAIT:g} s: {what}"
        time.sleep(0.02)


def bodies(client: TestClient) -> dict[str, tuple[str, bool]]:
    """delivery_id -> (status, whether its raw body is still stored)."""
    found = rows(client, "SELECT delivery_id, status, body IS NOT NULL FROM deliveries")
    return {row[0]: (row[1], bool(row[2])) for row in found}


def event_count(client: TestClient) -> int:
    [(count,)] = rows(client, "SELECT count(*) FROM events")
    return int(count)


def post(client: TestClient, delivery_id: str, body: bytes = ORDER) -> None:
    response = signed_post(
        client, "acme", "shopify", body, topic="orders/create", delivery_id=delivery_id
    )
    assert response.status_code in (200, 202), response.text


def test_the_periodic_purge_clears_old_accepted_bodies_only(
    settings: Settings, sources: dict[str, Source], clock: FrozenClock
) -> None:
    fast = settings.model_copy(
        update={"raw_body_retention_days": 30, "purge_interval_seconds": 0.05}
    )
    with TestClient(create_app(fast, sources, clock=clock)) as client:
        purge = state_of(client).retention
        post(client, "old-accepted")
        post(client, "old-quarantined", b"{not json")
        clock.now += timedelta(days=20)
        post(client, "newer-accepted")
        events = event_count(client)
        check = client.get("/api/v1/metrics/check").json()
        assert check["equal"]

        # Day 29 after the first deliveries: nothing is due yet, though the purge keeps running.
        clock.now += timedelta(days=9)
        runs = purge.runs
        wait_until(lambda: purge.runs >= runs + 2, "two purge runs")
        assert bodies(client) == {
            "old-accepted": ("accepted", True),
            "old-quarantined": ("quarantined", True),
            "newer-accepted": ("accepted", True),
        }

        # Day 31: the first accepted body is past 30 days; the quarantined one stays (replay).
        clock.now += timedelta(days=2)
        wait_until(lambda: not bodies(client)["old-accepted"][1], "the old body purged")
        assert bodies(client) == {
            "old-accepted": ("accepted", False),
            "old-quarantined": ("quarantined", True),
            "newer-accepted": ("accepted", True),
        }
        assert event_count(client) == events
        assert client.get("/api/v1/metrics/check").json()["equal"]

        clock.now += timedelta(days=20)  # day 51: the newer one (day 20) is 31 days old
        wait_until(lambda: not bodies(client)["newer-accepted"][1], "the newer body purged")
        assert bodies(client)["old-quarantined"] == ("quarantined", True)
        assert purge.purged_total == 2


def test_the_purge_runs_at_start(
    settings: Settings, sources: dict[str, Source], clock: FrozenClock
) -> None:
    with TestClient(create_app(settings, sources, clock=clock)) as client:
        post(client, "a")
        post(client, "b")
    clock.now += timedelta(days=settings.raw_body_retention_days + 1)
    with TestClient(create_app(settings, sources, clock=clock)) as client:
        assert settings.purge_interval_seconds >= 3600  # so only the run at start can do it
        wait_until(lambda: not any(kept for _, kept in bodies(client).values()), "purge at start")


def test_zero_days_keeps_bodies_forever(
    settings: Settings, sources: dict[str, Source], clock: FrozenClock
) -> None:
    forever = settings.model_copy(
        update={"raw_body_retention_days": 0, "purge_interval_seconds": 0.05}
    )
    with TestClient(create_app(forever, sources, clock=clock)) as client:
        post(client, "kept")
        clock.now += timedelta(days=10_000)
        time.sleep(0.3)
        assert state_of(client).retention.runs == 0
        assert bodies(client) == {"kept": ("accepted", True)}


def test_a_backlog_is_purged_in_chunks_between_batches(
    settings: Settings, sources: dict[str, Source], clock: FrozenClock
) -> None:
    with TestClient(create_app(settings, sources, clock=clock)) as client:
        for index in range(7):
            post(client, f"d{index}")
        clock.now += timedelta(days=settings.raw_body_retention_days + 1)
        purge = state_of(client).retention
        purge.chunk = 3
        purge.run_soon()
        wait_until(lambda: purge.purged_total == 7, "every body purged")
        assert purge.runs >= 3  # 3 + 3 + 1: the job queued itself again while more were due
        assert not any(kept for _, kept in bodies(client).values())


def test_purge_raw_bodies_counts_what_it_cleared(
    settings: Settings, sources: dict[str, Source], clock: FrozenClock
) -> None:
    with TestClient(create_app(settings, sources, clock=clock)) as client:
        post(client, "x")
        post(client, "y")
        cursor = service_of(client).con.cursor()
        assert purge_raw_bodies(cursor, clock.now - timedelta(seconds=1)) == 0
        assert purge_raw_bodies(cursor, clock.now + timedelta(seconds=1), limit=1) == 1
        assert purge_raw_bodies(cursor, clock.now + timedelta(seconds=1)) == 1
        assert purge_raw_bodies(cursor, clock.now + timedelta(seconds=1)) == 0
