"""Each platform's fetcher against a stand-in of its API (real HTTP on 127.0.0.1): pagination,
throttling, 429 with Retry-After, 5xx, 401 and empty listings."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from typing import Any

import pytest

from ingest.reconcile.fetchers import make_fetcher
from ingest.reconcile.http import ApiFailure, CredentialsRejected
from ingest.reconcile.records import FetchedRecord, Fetcher
from ingest.reconcile.shopify import API_VERSION
from ingest.sources import Source
from shoppulse.settings import Settings
from tests.conftest import SECRET
from tests.ingest.bigcommerce_stand_in import v2_order
from tests.ingest.store_api_stand_in import (
    BC_HASH,
    BC_TOKEN,
    SHOPIFY_TOKEN,
    STRIPE_KEY,
    WOO_KEY,
    WOO_SECRET,
    StoreApi,
    running_store_api,
    shopify_line_item,
)

SINCE = datetime(2025, 12, 1, tzinfo=UTC)
T0 = datetime(2025, 12, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def api() -> Iterator[StoreApi]:
    with running_store_api() as server:
        yield server


def source(provider: str, url: str, **credentials: str) -> Source:
    fields: dict[str, Any] = {
        "id": provider[:4],
        "provider": provider,
        "secrets": [SECRET],
        "api_base_url": url,
    }
    return Source.model_validate({**fields, **credentials})


def shopify(url: str, token: str = SHOPIFY_TOKEN) -> Fetcher:
    src = source("shopify", url, shop_domain="acme.myshopify.com", api_token=token)
    return make_fetcher(src, Settings(), backoff_base=0.01)


def fetch_all(fetcher: Fetcher) -> list[FetchedRecord]:
    try:
        return [record for page in fetcher.pages(SINCE) for record in page.records]
    finally:
        fetcher.close()


def shopify_node(number: int, lines: int = 1) -> dict[str, Any]:
    moment = (T0 + timedelta(minutes=number)).isoformat()
    return {
        "legacyResourceId": str(number),
        "createdAt": moment,
        "processedAt": moment,
        "updatedAt": moment,
        "cancelledAt": None,
        "test": False,
        "cartToken": f"cart-{number}",
        "checkoutToken": None,
        "currencyCode": "CAD",
        "totalDiscountsSet": {"shopMoney": {"amount": "0.00", "currencyCode": "CAD"}},
        "name": f"#{1000 + number}",
        "lineItems": [shopify_line_item(n, "2.50", "CAD") for n in range(lines)],
        "refunds": [],
    }


# ----------------------------------------------------------------------------- Shopify


def test_shopify_pages_orders_and_line_items_and_waits_out_throttling(api: StoreApi) -> None:
    api.shopify_orders = [shopify_node(n, lines=300 if n == 3 else 2) for n in range(1, 46)]
    line = {"subtotalSet": {"shopMoney": {"amount": "2.50", "currencyCode": "CAD"}}}
    api.shopify_orders[4]["refunds"] = [
        {
            "legacyResourceId": "77",
            "createdAt": (T0 + timedelta(hours=1)).isoformat(),
            "refundLineItems": {"nodes": [line] * 3},
        }
    ]
    api.throttled = 2
    started = time.monotonic()
    records = fetch_all(shopify(api.url))
    order_ids = [str(n) for n in range(1, 46)]
    assert [r.entity_id for r in records] == [*order_ids[:5], "77", *order_ids[5:]]
    big = records[2].events[0]
    assert (big.gross_sales, big.currency, big.cart_token) == (Decimal(750), "CAD", "cart-3")
    assert big.name == "#1003" and big.lines is not None and len(big.lines) == 300
    first = big.lines[0]
    assert (first.product_id, first.variant_id, first.sku, first.unit_price) == (
        "0",
        "1000",
        "SKU-0",
        Decimal("2.5"),
    )
    refund = records[5].events[0]
    assert (refund.kind, refund.order_id, refund.refund_amount) == ("refund", "5", Decimal("7.5"))
    posts = [target for method, target in api.requests if method == "POST"]
    assert set(posts) == {f"/admin/api/{API_VERSION}/graphql.json"}
    # 2 throttled + 7 order pages (7 per page) + 4 more pages of order 3's line items (90 per
    # page after the first 10) + 1 for the refund's line items.
    assert len(posts) == 14
    # THROTTLED: the bucket lacks 80 points at 1000 per second, and at least a second is waited.
    assert time.monotonic() - started >= 2.0


def test_shopify_retries_429_and_5xx_then_reports_rejected_credentials(api: StoreApi) -> None:
    api.shopify_orders = [shopify_node(1)]
    api.faults = [(429, {"Retry-After": "0.2"}, {}), (502, {}, None), (503, {}, None)]
    started = time.monotonic()
    assert len(fetch_all(shopify(api.url))) == 1
    assert time.monotonic() - started >= 0.2  # Retry-After honoured
    assert len(api.requests) == 4

    with pytest.raises(CredentialsRejected, match="401"):
        fetch_all(shopify(api.url, token="shpat_wrong"))
    api.faults = [(500, {}, None)] * 5
    with pytest.raises(ApiFailure, match="gave up after 5 attempts"):
        fetch_all(shopify(api.url))


def test_shopify_access_denied_and_an_empty_listing(api: StoreApi) -> None:
    assert fetch_all(shopify(api.url)) == []
    denied = {"errors": [{"message": "Access denied", "extensions": {"code": "ACCESS_DENIED"}}]}
    api.faults = [(200, {}, denied)]
    with pytest.raises(CredentialsRejected, match="ACCESS_DENIED"):
        fetch_all(shopify(api.url))


# ----------------------------------------------------------------------------- WooCommerce


def woo(url: str, secret: str = WOO_SECRET) -> Fetcher:
    src = source("woocommerce", url, consumer_key=WOO_KEY, consumer_secret=secret)
    return make_fetcher(src, Settings(), backoff_base=0.01)


def woo_order(number: int) -> dict[str, Any]:
    moment = (T0 + timedelta(minutes=number)).strftime("%Y-%m-%dT%H:%M:%S")
    return {
        "id": number,
        "status": "completed",
        "currency": "EUR",
        "date_created_gmt": moment,
        "date_modified_gmt": moment,
        "date_paid_gmt": moment,
        "discount_total": "1.00",
        "line_items": [{"id": 1, "subtotal": "10.00", "total": "9.00"}],
        "refunds": [{"id": 90000 + number, "total": "-2.00"}] if number % 50 == 0 else [],
    }


def test_woocommerce_pages_by_number_with_total_pages(api: StoreApi) -> None:
    api.woo_orders = [woo_order(n) for n in range(1, 251)]
    api.faults = [(500, {}, None)]
    pages = list(woo(api.url).pages(SINCE))
    assert [len(p.records) for p in pages] == [100, 100, 50]
    assert {p.total for p in pages} == {250}
    pages_asked = [t for _, t in api.requests if "page=" in t]
    assert len(pages_asked) == 4  # one 500 retried, then pages 1 to 3 and no fourth
    refunded = next(r for p in pages for r in p.records if r.entity_id == "50")
    assert [e.kind for e in refunded.events] == ["order", "refund"]
    assert refunded.delivery_id == "reconcile:order.updated:50:2025-12-10T12:50:00+00:00"


def test_woocommerce_empty_listing_and_rejected_key(api: StoreApi) -> None:
    assert fetch_all(woo(api.url)) == []
    with pytest.raises(CredentialsRejected):
        fetch_all(woo(api.url, secret="cs_wrong"))


# ----------------------------------------------------------------------------- BigCommerce


def bigcommerce(url: str) -> Fetcher:
    src = source("bigcommerce", url, store_hash=BC_HASH, api_token=BC_TOKEN)
    return make_fetcher(src, Settings(), backoff_base=0.01)


def test_bigcommerce_pages_until_a_short_page_and_maps_like_enrichment(api: StoreApi) -> None:
    api.bc_orders = [
        v2_order(n, created=T0, modified=T0 + timedelta(seconds=n)) for n in range(1, 261)
    ]
    api.faults = [(429, {"Retry-After": "0"}, None)]
    records = fetch_all(bigcommerce(api.url))
    assert len(records) == 260
    event = records[0].events[0]
    assert (event.gross_sales, event.discounts, event.currency) == (
        Decimal(225),
        Decimal(15),
        "EUR",
    )
    listing = [t for _, t in api.requests if "/v2/orders?" in t]
    assert len(listing) == 3  # the 429, then two pages (250 and a short one)


def test_bigcommerce_empty_listing_is_204(api: StoreApi) -> None:
    assert fetch_all(bigcommerce(api.url)) == []
    assert len(api.requests) == 1


# ----------------------------------------------------------------------------- Stripe


def stripe(url: str) -> Fetcher:
    return make_fetcher(source("stripe", url, api_key=STRIPE_KEY), Settings(), backoff_base=0.01)


def session(number: int, status: str) -> dict[str, Any]:
    created = int((T0 + timedelta(minutes=number)).timestamp())
    return {
        "id": f"cs_{number:04}",
        "object": "checkout.session",
        "status": status,
        "mode": "payment",
        "payment_status": "paid" if status == "complete" else "unpaid",
        "payment_intent": f"pi_{number:04}" if status == "complete" else None,
        "amount_subtotal": 2000,
        "amount_total": 2000,
        "total_details": {"amount_discount": 0},
        "currency": "usd",
        "livemode": True,
        "created": created,
        "expires_at": created + 86400,
    }


def test_stripe_pages_with_has_more_and_skips_open_sessions(api: StoreApi) -> None:
    statuses = ["complete", "expired", "open"]
    api.stripe_sessions = [session(n, statuses[n % 3]) for n in range(1, 151)]
    api.stripe_refunds = [
        {
            "id": "re_1",
            "object": "refund",
            "amount": 500,
            "charge": "ch_1",
            "payment_intent": "pi_0003",
            "currency": "usd",
            "status": "succeeded",
            "created": int(T0.timestamp()) + 3600,
        }
    ]
    api.faults = [(503, {}, None)]
    records = fetch_all(stripe(api.url))
    sessions = [r for r in records if r.topic.startswith("checkout.session")]
    assert len(sessions) == 100  # 150 listed on two pages, the 50 open ones skipped
    assert len([t for _, t in api.requests if "checkout/sessions" in t]) == 3
    assert any("starting_after=" in t for _, t in api.requests)
    completed = next(r for r in sessions if r.entity_id == "cs_0003")
    assert [e.kind for e in completed.events] == ["checkout", "order"]
    assert not completed.versioned
    refund = records[-1].events[0]
    assert (refund.kind, refund.entity_id, refund.order_id, refund.refund_amount) == (
        "refund",
        "re_1",
        "pi_0003",
        Decimal(5),
    )


def test_the_clients_never_send_credentials_over_plain_http_to_another_host() -> None:
    with pytest.raises(ValueError, match="https"):
        source("stripe", "http://api.example.com", api_key=STRIPE_KEY)
    assert format_datetime(SINCE, usegmt=True) == "Mon, 01 Dec 2025 00:00:00 GMT"


def test_a_listing_that_never_ends_stops_the_run(api: StoreApi) -> None:
    looping = {
        "data": {
            "orders": {
                "pageInfo": {"hasNextPage": True, "endCursor": "same"},
                "nodes": [{**shopify_node(1), "lineItems": {"nodes": []}}],
            }
        }
    }
    api.faults = [(200, {}, looping)] * 3
    with pytest.raises(ApiFailure, match="cursor 'same' twice"):
        fetch_all(shopify(api.url))
    assert len(api.requests) == 2

    full_page = {"object": "list", "data": [session(1, "complete")], "has_more": True}
    api.faults = [(200, {}, full_page)] * 3
    with pytest.raises(ApiFailure, match="twice"):
        fetch_all(stripe(api.url))


def test_a_request_that_times_out_is_retried(api: StoreApi) -> None:
    api.woo_orders = [woo_order(1)]
    api.delays = [1.0]  # the first request outlasts the client's timeout
    src = source("woocommerce", api.url, consumer_key=WOO_KEY, consumer_secret=WOO_SECRET)
    fetcher = make_fetcher(src, Settings(), backoff_base=0.01, timeout=0.3)
    assert [r.entity_id for r in fetch_all(fetcher)] == ["1"]
    assert len(api.requests) == 2

    api.delays = [1.0] * 5
    with pytest.raises(ApiFailure, match="did not answer in time"):
        fetch_all(make_fetcher(src, Settings(), backoff_base=0.01, timeout=0.3))
