"""Four platforms in one service: real fixtures, signed as each platform signs, then the figures
compared with values computed by hand from the fixtures (the computation is in the comments).

Changes made to the fixtures, and why:
- Shopify `orders/create`: the sample is a cancelled test order; here `test` is false,
  `cancelled_at` is null, and it points to the sample cart (`exampleCartId`) and checkout
  (`123123123`), so it counts and converts both.
- Stripe: the samples are test mode; here `livemode` is true so that they count.
- BigCommerce orders are enriched from a stand-in store API: order 250 answers with amounts in
  EUR, order 252 answers 404 (it stays without amounts).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from ingest.sources import Source
from shoppulse.service import create_app
from shoppulse.settings import Settings
from tests.conftest import SECRET, FrozenClock, fixture_json, make_source, signed_post
from tests.helpers.app import service_of, state_of
from tests.ingest.bigcommerce_stand_in import (
    STORE_HASH,
    TOKEN,
    StandIn,
    running_stand_in,
    v2_order,
)

WINDOW = {"from": "2017-01-01T00:00:00Z", "to": "2023-01-01T00:00:00Z"}


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    with running_stand_in() as server:
        yield server


def sources(api_url: str) -> dict[str, Source]:
    bigcommerce = Source.model_validate(
        {
            "id": "bc",
            "provider": "bigcommerce",
            "secrets": [SECRET],
            "store_hash": STORE_HASH,
            "api_token": TOKEN,
            "api_base_url": api_url,
        }
    )
    return {
        "shop": make_source("shop", "shopify", SECRET),
        "woo": make_source("woo", "woocommerce", SECRET),
        "bc": bigcommerce,
        "stripe": make_source("stripe", "stripe", SECRET),
    }


def live(event: dict[str, Any]) -> dict[str, Any]:
    event = copy.deepcopy(event)
    event["livemode"] = True
    event["data"]["object"]["livemode"] = True
    return event


def deliveries() -> list[tuple[str, str, str, dict[str, Any]]]:
    """(source, provider, topic, payload) for every delivery, in sending order."""
    order = fixture_json("shopify", "orders_create.json")
    order.update(
        test=False, cancelled_at=None, cart_token="exampleCartId", checkout_token="123123123"
    )
    sent = [
        ("shop", "shopify", "carts/create", fixture_json("shopify", "carts_create.json")),
        ("shop", "shopify", "checkouts/create", fixture_json("shopify", "checkouts_create.json")),
        ("shop", "shopify", "orders/create", order),
        ("shop", "shopify", "refunds/create", fixture_json("shopify", "refunds_create.json")),
        ("woo", "woocommerce", "order.created", fixture_json("woocommerce", "order.created.json")),
        ("woo", "woocommerce", "order.updated", fixture_json("woocommerce", "order.updated.json")),
    ]
    for name in (
        "store_cart_created",
        "store_cart_abandoned",
        "store_order_created",
        "store_cart_converted",
        "store_order_refund_created",
    ):
        payload = fixture_json("bigcommerce", f"{name}.json")
        sent.append(("bc", "bigcommerce", payload["scope"], payload))
    for name in ("checkout.session.completed", "checkout.session.expired", "charge.refunded"):
        payload = live(fixture_json("stripe", f"{name}.json"))
        sent.append(("stripe", "stripe", payload["type"], payload))
    return sent


def test_mixed_platforms_match_the_hand_computation(
    tmp_path: Path, stand_in: StandIn, clock: FrozenClock
) -> None:
    # Order 250 as the store API documents it: 120.00 of line items, a 5.00 discount and a
    # 2.50 coupon, paid in EUR; created 5 s before the webhook's own time.
    created_250 = datetime(2019, 6, 25, 16, 15, 30, tzinfo=UTC)
    stand_in.replies["250"] = [
        (
            200,
            v2_order(
                250,
                created=created_250,
                modified=created_250,
                subtotal="120.0000",
                discount="5.0000",
                coupon="2.5000",
                currency="EUR",
            ),
            {},
        )
    ]
    stand_in.replies["252"] = [
        (404, [{"status": 404, "message": "The resource was not found."}], {})
    ]
    settings = Settings(
        db_path=tmp_path / "data" / "shoppulse.duckdb",
        batch_linger_ms=0.5,
        reconcile_interval_seconds=0,  # enrichment alone (reconciliation has its own tests)
    )
    app = create_app(settings, sources(stand_in.url), clock=clock)
    with TestClient(app) as client:
        for number, (source, provider, topic, payload) in enumerate(deliveries()):
            response = signed_post(
                client,
                source,
                provider,
                orjson.dumps(payload),
                topic=topic,
                delivery_id=f"{source}-{number}",
                timestamp=int(clock.now.timestamp()),  # Stripe and BigCommerce check it
            )
            assert response.json()["status"] == "stored", response.text
        # A retried WooCommerce delivery is a duplicate (its id comes from the order).
        duplicate = signed_post(
            client,
            "woo",
            "woocommerce",
            orjson.dumps(fixture_json("woocommerce", "order.created.json")),
            topic="order.created",
            delivery_id="woo-retry",
        )
        assert duplicate.json()["status"] == "duplicate"

        enricher = state_of(client).enricher
        deadline = time.monotonic() + 10
        while not (enricher.enriched == 1 and enricher.gave_up == 1):
            assert time.monotonic() < deadline, "the enricher did not finish"
            time.sleep(0.05)
        service_of(client).worker.fold_now()
        body = client.get("/api/v1/metrics", params=WINDOW).json()
        by_source = {
            source: client.get("/api/v1/metrics", params={**WINDOW, "source": source}).json()
            for source in ("shop", "woo", "bc", "stripe")
        }
        check = client.get("/api/v1/metrics/check").json()

    # Orders that count (not test, not cancelled, not deleted), by currency:
    #   USD  shop 820982911946154500  gross 414.95  discounts 20.00  (2022-01-01)
    #   USD  woo 727 (two versions)   gross  18.00  discounts  0.00  (6.00 + 12.00 line subtotals)
    #   USD  stripe pi_1GqFp...       gross  30.00  discounts  0.00  (2 x 1500 cents)
    #   EUR  bc 250 (enriched)        gross 120.00  discounts  7.50  (5.00 + 2.50 coupon)
    #   none bc 252 (API said 404)    counted, no amounts
    # Returns (refunds created in the window, of counted orders):
    #   USD  shop refund 890088186047892400: 89.99 + 19.99 + 24.99 + 159.99 + 119.99 = 414.95
    #   USD  stripe re_fixture_partial_refund: 1000 cents = 10.00
    #   EUR  bc refund 3 of order 250: amount unknown = 0.00
    # USD: gross 414.95 + 18.00 + 30.00 = 462.95; discounts 20.00; returns 424.95;
    #      net 462.95 - 20.00 - 424.95 = 18.00; aov (462.95 - 20.00) / 3 = 147.65
    # EUR: gross 120.00; discounts 7.50; returns 0.00; net 112.50; aov 112.50
    assert body["orders"] == 5
    assert body["orders_without_amounts"] == 1
    assert body["currency"] is None and body["gross_sales"] is None  # two currencies
    currencies = {c["currency"]: c for c in body["by_currency"]}
    assert currencies["USD"] == {
        "currency": "USD",
        "orders": 3,
        "gross_sales": "462.95",
        "discounts": "20.00",
        "returns": "424.95",
        "net_sales": "18.00",
        "aov": "147.65",
    }
    assert currencies["EUR"] == {
        "currency": "EUR",
        "orders": 1,
        "gross_sales": "120.00",
        "discounts": "7.50",
        "returns": "0.00",
        "net_sales": "112.50",
        "aov": "112.50",
    }
    assert currencies[None]["orders"] == 1
    # Carts (by creation time; the clock stands in 2026, long past every timeout):
    #   shop exampleCartId    converted (the order names it)
    #   bc 09346904-...       abandoned (store/cart/abandoned; no order)
    #   bc d30016e2-...       converted (store/cart/converted, order 252)
    # Checkouts:
    #   shop 123123123        completed (the order names it)
    #   stripe cs_test_SI8... completed (checkout.session.completed)
    #   stripe cs_test_a1y... abandoned (checkout.session.expired)
    #   (WooCommerce order 727 is "processing": an order, not a checkout.)
    funnel = {name: body[name] for name in body if name.startswith(("carts_", "checkouts_"))}
    assert funnel == {
        "carts_created": 3,
        "carts_converted": 2,
        "carts_abandoned": 1,
        "carts_open": 0,
        "checkouts_started": 3,
        "checkouts_completed": 2,
        "checkouts_abandoned": 1,
        "checkouts_open": 0,
    }
    assert body["cart_conversion_rate"] == body["checkout_conversion_rate"] == 0.666667
    assert body["cart_abandonment_rate"] == body["checkout_abandonment_rate"] == 0.333333
    assert body["provisional"] is False
    # Per source: every platform's share, as above.
    assert (by_source["shop"]["gross_sales"], by_source["shop"]["net_sales"]) == (
        "414.95",
        "-20.00",
    )
    assert (by_source["woo"]["orders"], by_source["woo"]["aov"]) == (1, "18.00")
    assert (by_source["stripe"]["returns"], by_source["stripe"]["net_sales"]) == ("10.00", "20.00")
    assert (by_source["bc"]["orders"], by_source["bc"]["orders_without_amounts"]) == (2, 1)
    assert (by_source["bc"]["carts_created"], by_source["bc"]["carts_abandoned"]) == (2, 1)
    assert check["equal"] is True, check
