"""BigCommerce order enrichment against a stand-in of the store API on 127.0.0.1.

The stand-in answers `GET /stores/<hash>/v2/orders/<id>` with the documented V2 order shape (or
with scripted failures). Deliveries are the real BigCommerce fixtures, signed the way BigCommerce
signs them, sent through the real app.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from ingest.bigcommerce_api import FetchFailed, order_event
from ingest.enrichment import OrderEnricher
from ingest.sources import Source
from shoppulse.service import create_app
from shoppulse.settings import Settings
from tests.conftest import SECRET, FrozenClock, fixture_json, signed_post
from tests.helpers.app import figures, service_of, state_of
from tests.helpers.waiting import wait_for
from tests.ingest.bigcommerce_stand_in import (
    STORE_HASH,
    TOKEN,
    StandIn,
    running_stand_in,
    v2_order,
    v2_product,
)

ORDER_CREATED = datetime.fromtimestamp(1561479335, UTC)  # store/order/created's created_at
WINDOW = {"from": "2019-06-25T00:00:00Z", "to": "2019-06-26T00:00:00Z"}


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    with running_stand_in() as server:
        yield server


def bc_source(source_id: str, api_url: str | None = None) -> Source:
    fields: dict[str, Any] = {"id": source_id, "provider": "bigcommerce", "secrets": [SECRET]}
    if api_url is not None:
        fields.update(store_hash=STORE_HASH, api_token=TOKEN, api_base_url=api_url)
    return Source.model_validate(fields)


def deliver(client: TestClient, clock: FrozenClock, name: str, **changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = copy.deepcopy(fixture_json("bigcommerce", name))
    payload.update(changes)
    response = signed_post(
        client,
        "bc",
        "bigcommerce",
        orjson.dumps(payload),
        topic=payload["scope"],
        delivery_id=f"{payload['scope']}-{payload['created_at']}",
        timestamp=int(clock.now.timestamp()),
    )
    assert response.status_code == 200, response.text
    return payload


def app_for(tmp_path: Path, source: Source, clock: FrozenClock) -> TestClient:
    settings = Settings(
        db_path=tmp_path / "data" / "shoppulse.duckdb",
        batch_linger_ms=0.5,
        reconcile_interval_seconds=0,  # enrichment alone (reconciliation has its own tests)
    )
    return TestClient(create_app(settings, {source.id: source}, clock=clock))


# ----------------------------------------------------------------------------- in the service


def test_service_fills_in_amounts_and_refetches_after_a_status_change(
    tmp_path: Path, stand_in: StandIn, clock: FrozenClock
) -> None:
    created = datetime(2019, 6, 25, 16, 15, 30, tzinfo=UTC)  # 5 s before the webhook's time
    stand_in.replies["250"] = [(200, v2_order(250, created=created, modified=created), {})]
    with app_for(tmp_path, bc_source("bc", stand_in.url), clock) as client:
        deliver(client, clock, "store_order_created.json")
        wait_for(
            lambda: figures(client, **WINDOW)["orders_without_amounts"] == 0,
            "the enriched amounts",
            10,
        )
        body = figures(client, **WINDOW)
        assert body["orders"] == 1
        # 225.00 gross; 10.00 discount + 5.00 coupon; in the transactional currency (EUR).
        assert body["currency"] == "EUR"
        assert (body["gross_sales"], body["discounts"], body["aov"]) == (
            "225.00",
            "15.00",
            "210.00",
        )
        _, path, headers = stand_in.requests[0]
        assert path == f"/stores/{STORE_HASH}/v2/orders/250"
        assert headers["X-Auth-Token"] == TOKEN and headers["Accept"] == "application/json"

        # A later status webhook carries no amounts: the order is fetched again. The API dates
        # the change 3 s before the webhook's dispatch time; the new event still wins.
        changed = datetime.fromtimestamp(1561479935 - 3, UTC)
        stand_in.replies["250"] = [
            (200, v2_order(250, created=created, modified=changed, subtotal="300.0000"), {})
        ]
        deliver(client, clock, "store_order_statusUpdated.json", created_at=1561479935)
        wait_for(
            lambda: figures(client, **WINDOW)["gross_sales"] == "300.00",
            "the enriched gross sales",
            10,
        )
        body = figures(client, **WINDOW)
        assert (body["orders"], body["orders_without_amounts"]) == (1, 0)
        assert len(stand_in.order_requests(250)) == 2
        assert client.get("/api/v1/metrics/check").json()["equal"] is True
        events = (
            service_of(client)
            .con.cursor()
            .execute("SELECT count(*), count(DISTINCT event_seq), count(currency) FROM events")
            .fetchone()
        )
        assert events == (4, 4, 2)  # two webhook events, two enriched ones
        # The enriched versions are fills: the gross sales they added say so (the status webhook,
        # a newer version without amounts, took the first fill's 225.00 away again).
        con = service_of(client).con.cursor()
        origins = con.execute("SELECT origin, count(*) FROM events GROUP BY 1 ORDER BY 1")
        assert origins.fetchall() == [("fill", 2), ("webhook", 2)]
        causes = con.execute(
            "SELECT cause, sum(gross_sales) FROM metrics_sales_deltas GROUP BY 1 ORDER BY 1"
        ).fetchall()
        assert [(cause, str(gross)) for cause, gross in causes] == [
            ("delivery", "0.0000"),
            ("order_edit", "-225.0000"),
            ("reconciliation_fill", "525.0000"),
        ]


def test_without_credentials_orders_count_without_amounts(
    tmp_path: Path, stand_in: StandIn, clock: FrozenClock
) -> None:
    with app_for(tmp_path, bc_source("bc"), clock) as client:
        assert not state_of(client).enricher.active
        deliver(client, clock, "store_order_created.json")
        deliver(client, clock, "store_cart_converted.json")
        time.sleep(0.3)
        body = figures(client, **WINDOW)
        assert (body["orders"], body["orders_without_amounts"]) == (2, 2)
        assert body["gross_sales"] is None and body["by_currency"][0]["currency"] is None
    assert stand_in.requests == []


def test_backoff_on_transient_errors_and_giving_up_on_404(
    tmp_path: Path, stand_in: StandIn, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    order = v2_order(250, created=ORDER_CREATED, modified=ORDER_CREATED)
    stand_in.replies["250"] = [
        (500, {"title": "Internal Server Error"}, {}),
        (429, {"title": "Too many requests"}, {"X-Rate-Limit-Time-Reset-Ms": "150"}),
        (200, order, {}),
    ]
    stand_in.replies["252"] = [(404, [{"status": 404, "message": "not found"}], {})]
    # The service's own source has no credentials; the enricher under test gets them.
    with app_for(tmp_path, bc_source("bc"), clock) as client:
        deliver(client, clock, "store_order_created.json")
        deliver(client, clock, "store_cart_converted.json")
        service = service_of(client)
        enricher = OrderEnricher(
            service.con,
            service.writer,
            {"bc": bc_source("bc", stand_in.url)},
            clock,
            poll_interval=0.05,
            backoff_base=0.1,
            max_attempts=4,
        )
        with caplog.at_level(logging.INFO, logger="shoppulse.enrichment"):
            enricher.start()
            try:
                wait_for(
                    lambda: enricher.enriched == 1 and enricher.gave_up == 1,
                    "one order enriched, one given up",
                    10,
                )
            finally:
                enricher.stop()
        first, second, third = stand_in.order_requests(250)
        assert second - first >= 0.1  # the first backoff
        assert third - second >= 0.15  # max(0.2 backoff, 0.15 s rate-limit reset)
        assert len(stand_in.order_requests(252)) == 1  # a 404 is not retried
        assert "order 252 of bc stays without amounts: order 252 does not exist (404)" in (
            caplog.text
        )
        body = figures(client, **WINDOW)
        assert (body["orders"], body["orders_without_amounts"]) == (2, 1)
        assert body["by_currency"][1]["gross_sales"] == "225.00"
        assert client.get("/api/v1/metrics/check").json()["equal"] is True


# ----------------------------------------------------------------------------- the answer


def test_order_event_reads_the_documented_fields() -> None:
    created = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    modified = datetime(2026, 1, 2, 4, 0, 0, tzinfo=UTC)
    raw = json.dumps(v2_order(7, created=created, modified=modified, subtotal=19.99, coupon=""))
    answer = json.loads(raw, parse_float=Decimal)
    event = order_event(answer, "7", not_before=None)
    assert (event.created_at, event.updated_at) == (created, modified)
    assert (event.gross_sales, event.discounts, event.currency) == (
        Decimal("19.99"),
        Decimal("10"),
        "EUR",
    )
    later = datetime(2026, 1, 2, 4, 0, 9, tzinfo=UTC)
    assert order_event(answer, "7", not_before=later).updated_at == later
    cancelled = order_event({**answer, "status_id": 5}, "7", not_before=None)
    assert cancelled.cancelled and cancelled.action == "cancel"
    assert order_event({**answer, "status_id": 0}, "7", not_before=None).cancelled
    assert order_event({**answer, "is_deleted": True}, "7", not_before=None).deleted
    no_default = {k: v for k, v in answer.items() if k != "default_currency_code"}
    assert order_event(no_default, "7", not_before=None).currency == "USD"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": 8}, "answered with order 8"),
        ({"date_modified": "yesterday"}, "not an RFC 2822 date"),
        ({"subtotal_ex_tax": None}, "has no 'subtotal_ex_tax'"),
        ({"subtotal_ex_tax": "12.34567"}, "more than 4 decimal places"),
        ({"status_id": "11"}, "not an integer"),
    ],
)
def test_malformed_answers_are_given_up(change: dict[str, Any], message: str) -> None:
    answer = {**v2_order(7, created=ORDER_CREATED, modified=ORDER_CREATED), **change}
    with pytest.raises(FetchFailed, match=message) as raised:
        order_event(answer, "7", not_before=None)
    assert not raised.value.transient


def test_the_orders_products_become_its_lines_page_by_page(
    tmp_path: Path, stand_in: StandIn, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ingest.bigcommerce_api.PRODUCTS_PER_PAGE", 2)  # 3 products: 2 pages
    created = datetime(2019, 6, 25, 16, 15, 30, tzinfo=UTC)
    stand_in.replies["250"] = [(200, v2_order(250, created=created, modified=created), {})]
    stand_in.products["250"] = [  # 2 x 75.00 + 50.00 + 25.00 = 225.00, the order's subtotal
        v2_product(1, quantity=2, discounts=("10.0000",), sku="TER-01"),
        v2_product(2, price="50.0000", discounts=("5.0000",), name="Moss kit"),
        v2_product(3, price="25.0000", name="Glass cleaner"),
    ]
    with app_for(tmp_path, bc_source("bc", stand_in.url), clock) as client:
        deliver(client, clock, "store_order_created.json")
        wait_for(
            lambda: figures(client, **WINDOW)["orders_without_amounts"] == 0,
            "the enriched amounts",
            10,
        )
        cursor = service_of(client).con.cursor()
        found = cursor.execute(
            "SELECT name, gross_sales, event_seq FROM events WHERE currency IS NOT NULL"
        ).fetchone()
        assert found is not None
        name, gross, seq = found
        lines = cursor.execute(
            "SELECT line, product_id, variant_id, sku, title, quantity, unit_price, discount "
            "FROM event_lines WHERE event_seq = ? ORDER BY line",
            [seq],
        ).fetchall()
    assert name == "#250"
    assert lines == [
        (1, "1", "1001", "TER-01", "Orbit Terrarium", 2, Decimal("75"), Decimal("10")),
        (2, "2", "1002", None, "Moss kit", 1, Decimal("50"), Decimal("5")),
        (3, "3", "1003", None, "Glass cleaner", 1, Decimal("25"), Decimal("0")),
    ]
    assert sum(line[5] * line[6] for line in lines) == gross == Decimal("225")
    pages = [path for _, path, _ in stand_in.requests if "/products" in path]
    assert pages == [
        f"/stores/{STORE_HASH}/v2/orders/250/products?limit=2&page=1",
        f"/stores/{STORE_HASH}/v2/orders/250/products?limit=2&page=2",
    ]


def test_products_that_cannot_be_read_leave_the_lines_unknown_not_the_amounts() -> None:
    created = datetime(2019, 6, 25, 16, 15, 30, tzinfo=UTC)
    order = v2_order(250, created=created, modified=created)
    event = order_event(order, "250", not_before=None, products=[{"quantity": 1}])  # no price
    assert event.lines is None and event.gross_sales == Decimal("225")
    event = order_event(order, "250", not_before=None, products=[])
    assert event.lines == ()
