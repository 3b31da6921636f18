"""Restatements, `as_of` and versioned definitions, hand-computed through the real app."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import FrozenClock
from tests.helpers.app import figures, service_of
from tests.metrics.shop import Shop

DAY = datetime(2026, 6, 1, tzinfo=UTC)
DAYS = {"from": DAY.isoformat(), "to": (DAY + timedelta(days=3)).isoformat()}


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(DAY + timedelta(hours=9))


def _restated(client: TestClient, **params: str) -> dict[str, Any]:
    response = client.get("/api/v1/metrics/restatements", params={**DAYS, **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_day_restated_by_a_late_order_a_cancellation_and_a_refund(
    client: TestClient, clock: FrozenClock
) -> None:
    shop = Shop(client)
    shop.order("A", DAY + timedelta(hours=9), gross="120.00", discounts="20.00")
    shop.order("B", DAY + timedelta(hours=10), gross="50.00")
    clock.now = DAY + timedelta(hours=12)
    figures(client)
    clock.now = DAY + timedelta(days=1, hours=1)  # the day closed at midnight with 150.00
    figures(client)
    shop.order("C", DAY + timedelta(hours=23, minutes=50), gross="30.00")  # late
    shop.order(
        "B",
        DAY + timedelta(hours=10),
        gross="50.00",
        cancelled=True,
        updated=DAY + timedelta(days=1, hours=1),
        topic="orders/cancelled",
    )
    shop.refund("r1", "A", DAY + timedelta(hours=15), ["10.00"])  # a return of that day
    clock.now = DAY + timedelta(days=1, hours=2)
    figures(client)

    body = _restated(client, metric="net_sales", grain="day")
    assert body["definition_version"] == 1
    [day] = body["buckets"]
    assert day["bucket"] == DAY.isoformat() and day["currency"] == "USD"
    assert (day["first_reported"], day["now"], day["difference"]) == ("150.00", "120.00", "-30.00")
    assert day["causes"] == {"cancellation": "-50.00", "late_delivery": "30.00", "refund": "-10.00"}

    # With a settle delay of two hours the day was first reported with all of it.
    [settled] = _restated(client, grain="day", settle=str(2 * 3600))["buckets"]
    assert (settled["first_reported"], settled["difference"], settled["causes"]) == (
        "120.00",
        "0.00",
        {},
    )
    # The first reported value is what as_of the close answered.
    then = client.get(
        "/api/v1/metrics",
        params={**DAYS, "to": (DAY + timedelta(days=1)).isoformat(), "as_of": day["closed_at"]},
    ).json()
    assert then["net_sales"] == "150.00" and then["orders"] == 2


def test_abandonment_reversed_by_a_later_order(client: TestClient, clock: FrozenClock) -> None:
    shop = Shop(client)
    shop.cart("X", DAY + timedelta(hours=9))
    figures(client)  # folded at 09:00: the 09:00 hour closes with the cart open
    clock.now = DAY + timedelta(hours=11)  # timed out: abandoned
    figures(client)
    shop.order("X1", DAY + timedelta(hours=11), gross="10.00", cart_token="X")
    figures(client)
    body = _restated(client, metric="carts_abandoned", grain="hour")
    [hour] = body["buckets"]
    # The 09:00 hour closed at 10:00 with the cart still open: the timeout restated it, the
    # order restated it back.
    assert (hour["first_reported"], hour["now"]) == (0, 0)
    assert hour["causes"] == {"abandonment": 1, "abandonment_reversed": -1}
    converted = _restated(client, metric="carts_converted", grain="hour")["buckets"]
    assert converted[0]["causes"] == {"abandonment_reversed": 1}


def test_open_buckets_are_not_restated(client: TestClient, clock: FrozenClock) -> None:
    Shop(client).order("A", DAY + timedelta(hours=8), gross="5.00")
    figures(client)
    assert _restated(client, grain="day")["buckets"] == []  # the day has not ended
    assert len(_restated(client, grain="hour")["buckets"]) == 1


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("/api/v1/metrics", {"as_of": "2030-01-01T00:00:00Z"}, "is in the future"),
        ("/api/v1/metrics/timeseries", {"metric": "aov", "as_of": "2031-01-01"}, "in the future"),
        ("/api/v1/metrics/restatements", {"metric": "aov"}, "'aov' is an average, not a sum"),
        ("/api/v1/metrics/restatements", {"metric": "cart_conversion_rate"}, "is a rate"),
        ("/api/v1/metrics/restatements", {"metric": "nope"}, "unknown metric 'nope'"),
        ("/api/v1/metrics/restatements", {"grain": "minute"}, "hour"),
        ("/api/v1/metrics/restatements", {"settle": "-1"}, "greater than or equal to 0"),
    ],
)
def test_bad_requests_get_a_clear_422(
    client: TestClient, path: str, params: dict[str, str], message: str
) -> None:
    response = client.get(path, params=params)
    assert response.status_code == 422
    assert message in response.text


def test_as_of_before_any_fold_answers_nothing_yet(client: TestClient, clock: FrozenClock) -> None:
    before = clock.now - timedelta(hours=1)
    Shop(client).order("A", DAY + timedelta(hours=8), gross="5.00")
    figures(client)
    then = client.get("/api/v1/metrics", params={"as_of": before.isoformat()}).json()
    assert then["orders"] == 0 and then["as_of"] is None and then["events_folded_through"] == 0


def test_definitions_name_their_formula_and_version(client: TestClient) -> None:
    definitions = client.get("/api/v1/metrics/definitions").json()
    by_name = {d["name"]: d for d in definitions}
    assert by_name["aov"]["formula"] == "(gross_sales - discounts) / orders"
    assert all(d["version"] >= 1 and d["description"] for d in definitions)
    figures_now = figures(client)
    assert figures_now["definition_versions"] == {d["name"]: d["version"] for d in definitions}


def test_a_delivery_replayed_out_of_quarantine_restates_as_replay(
    client: TestClient, clock: FrozenClock
) -> None:
    shop = Shop(client)
    shop.order("A", DAY + timedelta(hours=1), gross="10.00")
    # Dated three days ahead of the service clock: quarantined (future_tolerance is a day).
    late = DAY + timedelta(days=2, hours=1)
    response = shop.order("F", late, gross="7.00")
    assert response.json()["status"] == "quarantined"
    figures(client)  # the history begins before that day closes
    clock.now = DAY + timedelta(days=3, hours=1)  # the clock catches up; that day has closed
    figures(client)
    replayed = client.post("/api/v1/ingest/replay", json={})
    assert replayed.status_code == 200, replayed.text
    figures(client)
    [day] = [
        b
        for b in _restated(client, metric="orders", grain="day")["buckets"]
        if b["bucket"] == (DAY + timedelta(days=2)).isoformat()
    ]
    assert (day["first_reported"], day["now"], day["causes"]) == (0, 1, {"replay": 1})


def test_as_of_after_compaction_resolves_to_the_end_of_the_hour(
    client: TestClient, clock: FrozenClock
) -> None:
    shop, answered = Shop(client), {}
    for minute, order in ((10, "A"), (40, "B"), (60, None), (80, "C")):
        clock.now = DAY + timedelta(hours=9, minutes=minute)
        if order:
            shop.order(order, DAY + timedelta(hours=8), gross="10.00")
        answered[clock.now] = figures(client, **DAYS)["orders"]
    assert list(answered.values()) == [1, 2, 2, 3]
    worker = service_of(client).worker
    clock.now += timedelta(days=8)  # older than the per-fold period: merged per hour
    figures(client)
    worker.write_state_now()
    assert worker.compact_now() > 0

    def orders_as_of(moment: datetime) -> int:
        params = {**DAYS, "as_of": moment.isoformat()}
        return int(client.get("/api/v1/metrics", params=params).json()["orders"])

    # The end of an hour, and a moment after the last fold of its hour, stay exact ...
    ten, twenty_past_ten = DAY + timedelta(hours=10), DAY + timedelta(hours=10, minutes=20)
    assert orders_as_of(ten) == answered[ten] == 2
    assert orders_as_of(twenty_past_ten) == answered[twenty_past_ten] == 3
    # ... a moment within an hour answers as of the end of the hour before.
    assert orders_as_of(DAY + timedelta(hours=9, minutes=40)) == 0
    # Restatements stay exact: the causes add up to the difference.
    [day] = _restated(client, metric="orders", grain="day")["buckets"]
    assert day["now"] == 3 and sum(day["causes"].values()) == day["difference"]

    clock.now += timedelta(days=90)  # older than the hourly period: merged per day
    figures(client)
    worker.write_state_now()
    assert worker.compact_now() > 0
    assert orders_as_of(ten) == 0  # within the day: as of the end of the day before
    assert orders_as_of(twenty_past_ten) == 3  # the day's last fold: no fold came in between
    assert orders_as_of(DAY + timedelta(days=1)) == 3


def test_days_of_a_time_zone(client: TestClient, clock: FrozenClock) -> None:
    shop = Shop(client)
    # 23:30 UTC is the next day in Berlin (UTC+2 in June): that day closes at 22:00 UTC the day
    # after, and the cancellation at 23:00 UTC restates it.
    shop.order("A", DAY + timedelta(hours=23, minutes=30), gross="40.00")
    figures(client)  # folded (and the history begun) at 09:00 UTC
    clock.now = DAY + timedelta(days=1, hours=23)
    figures(client)
    shop.order(
        "A",
        DAY + timedelta(hours=23, minutes=30),
        gross="40.00",
        cancelled=True,
        updated=clock.now,
        topic="orders/cancelled",
    )
    figures(client)
    body = _restated(client, grain="day", tz="Europe/Berlin")
    assert body["timezone"] == "Europe/Berlin"
    [day] = body["buckets"]
    assert day["bucket"] == (DAY + timedelta(hours=22)).isoformat()
    assert day["closed_at"] == (DAY + timedelta(days=1, hours=22)).isoformat()
    assert (day["first_reported"], day["now"], day["causes"]) == (
        "40.00",
        "0.00",
        {"cancellation": "-40.00"},
    )
    # In UTC that day has not closed yet at 23:00 UTC of the day after: not restated... yet
    # the UTC day of the order (DAY) closed, as first reported with the order.
    [utc_day] = _restated(client, grain="day", tz="UTC")["buckets"]
    assert utc_day["bucket"] == DAY.isoformat() and utc_day["first_reported"] == "40.00"
