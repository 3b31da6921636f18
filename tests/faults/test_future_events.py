"""Events dated more than `future_tolerance` (default 1 day) ahead of the service clock go to
quarantine with a reason, whatever the adapter, instead of distorting live windows."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from ingest.sources import Source
from ingest.storage.body_codec import unpack
from shoppulse.service import create_app
from shoppulse.settings import Settings
from tests.conftest import FrozenClock, fixture_json, make_source, signed_post
from tests.fuzz.adapters import SECRET as STANDARD_SECRET
from tests.fuzz.adapters import sign
from tests.helpers.app import service_of

ORDER: dict[str, Any] = fixture_json("shopify", "orders_create.json")
STANDARD: dict[str, Any] = fixture_json("standard", "events.json")


def order(order_id: int, *, created: str, updated: str) -> bytes:
    body = dict(ORDER, id=order_id, created_at=created, processed_at=created, updated_at=updated)
    return orjson.dumps(body)


def post_order(client: TestClient, body: bytes, delivery_id: str) -> Any:
    return signed_post(
        client, "acme", "shopify", body, topic="orders/create", delivery_id=delivery_id
    )


def stored(client: TestClient, delivery_id: str) -> tuple[str, str | None, bytes | None, int]:
    row = (
        service_of(client)
        .con.cursor()
        .execute(
            "SELECT status, reason, body, (SELECT count(*) FROM events e "
            "WHERE e.delivery_seq = d.delivery_seq), body_codec FROM deliveries d "
            "WHERE delivery_id = ?",
            [delivery_id],
        )
        .fetchone()
    )
    assert row is not None
    return row[0], row[1], unpack(row[2], row[4]), int(row[3])


def live_figures(client: TestClient) -> dict[str, Any]:
    service_of(client).worker.fold_now()
    body = client.get("/api/v1/metrics").json()
    return {k: v for k, v in body.items() if k not in {"as_of", "freshness_seconds"}}


@pytest.mark.parametrize("field", ["updated", "created"])
def test_an_event_more_than_a_day_ahead_is_quarantined(
    client: TestClient, clock: FrozenClock, field: str
) -> None:
    now = clock.now.isoformat()
    ahead = (clock.now + timedelta(days=1, seconds=1)).isoformat()
    before = live_figures(client)
    times = (
        {"created": now, "updated": ahead}
        if field == "updated"
        else {"created": ahead, "updated": now}
    )
    body = order(101, **times)
    response = post_order(client, body, "future-1")
    assert response.status_code == 202, response.text
    reason = response.json()["reason"]
    assert reason.startswith(f"event time {ahead} (")
    assert "is more than 1 day in the future" in reason
    assert stored(client, "future-1") == ("quarantined", reason, body, 0)
    assert live_figures(client) == before
    stats = client.get("/api/v1/ingest/stats").json()["sources"]["acme"]
    assert stats["quarantined"] == 1 and stats["accepted"] == 0


def test_up_to_the_tolerance_and_the_past_are_stored(
    client: TestClient, clock: FrozenClock
) -> None:
    edge = (clock.now + timedelta(days=1)).isoformat()
    response = post_order(client, order(102, created=edge, updated=edge), "edge")
    assert response.status_code == 200 and response.json()["status"] == "stored"
    old = "2001-09-09T01:46:40+00:00"
    response = post_order(client, order(103, created=old, updated=old), "old")
    assert response.status_code == 200 and response.json()["status"] == "stored"
    assert stored(client, "edge")[3] == stored(client, "old")[3] == 1


def test_the_tolerance_is_a_setting(
    settings: Settings, sources: dict[str, Source], clock: FrozenClock
) -> None:
    tight = settings.model_copy(update={"future_tolerance": timedelta(hours=6)})
    with TestClient(create_app(tight, sources, clock=clock)) as client:
        ahead = (clock.now + timedelta(hours=7)).isoformat()
        response = post_order(client, order(104, created=ahead, updated=ahead), "six")
        assert response.status_code == 202
        assert "is more than 6 hours in the future" in response.json()["reason"]


def test_one_future_event_quarantines_the_whole_delivery_for_any_adapter(
    settings: Settings, clock: FrozenClock
) -> None:
    """The check runs in the intake after normalization: Standard Webhooks gets it too."""
    sources = {"custom": make_source("custom", "standard", STANDARD_SECRET)}
    events = [dict(event) for event in STANDARD["events"]]
    for event in events:  # all in the present ...
        event["created_at"] = event["updated_at"] = clock.now.isoformat()
    events[-1]["updated_at"] = (clock.now + timedelta(days=30)).isoformat()  # ... but one
    body = orjson.dumps({"events": events})
    headers = sign(
        "standard",
        body,
        topic="events",
        delivery_id="msg-future",
        timestamp=int(clock.now.timestamp()),
    )
    with TestClient(create_app(settings, sources, clock=clock)) as client:
        response = client.post("/webhooks/custom", content=body, headers=headers)
        assert response.status_code == 202, response.text
        assert f"updated_at of {events[-1]['kind']}" in response.json()["reason"]
        assert stored(client, "msg-future")[::3] == ("quarantined", 0)
