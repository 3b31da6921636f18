"""A store that sends signed Shopify deliveries, built from the real fixtures, to a running service.

Every entity gets a fresh id and, unless told otherwise, the current time, so tests sharing one
service never collide.
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import orjson

from ingest.providers import get_provider
from tests.conftest import SECRET, fixture_json

SHOPIFY = get_provider("shopify")
ORDER: dict[str, Any] = fixture_json("shopify", "orders_create.json")
CART: dict[str, Any] = fixture_json("shopify", "carts_create.json")
CHECKOUT: dict[str, Any] = fixture_json("shopify", "checkouts_create.json")


def fresh_id() -> str:
    return uuid.uuid4().hex


def _money_set(amount: Decimal, currency: str) -> dict[str, Any]:
    value = {"amount": str(amount), "currency_code": currency}
    return {"shop_money": value, "presentment_money": value}


def order_payload(
    order_id: int,
    created: datetime,
    *,
    gross: str,
    discounts: str,
    currency: str = "USD",
    cart_token: str | None = None,
    checkout_token: str | None = None,
) -> dict[str, Any]:
    """The real orders/create sample as a live order: not a test, not cancelled, ours ids/times."""
    payload = copy.deepcopy(ORDER)
    stamp = created.isoformat()
    payload.update(
        id=order_id,
        admin_graphql_api_id=f"gid://shopify/Order/{order_id}",
        test=False,
        cancelled_at=None,
        cancel_reason=None,
        created_at=stamp,
        processed_at=stamp,
        updated_at=stamp,
        currency=currency,
        cart_token=cart_token,
        checkout_token=checkout_token,
        total_line_items_price=gross,
        total_discounts=discounts,
        total_line_items_price_set=_money_set(Decimal(gross), currency),
        total_discounts_set=_money_set(Decimal(discounts), currency),
    )
    return payload


class Store:
    """One source of the service: posts signed deliveries and asserts they were taken."""

    _next_order = int(time.time() * 1000) * 1000

    def __init__(self, client: httpx.Client, source: str, secret: str = SECRET) -> None:
        self.client = client
        self.source = source
        self.secret = secret

    def post(
        self, topic: str, payload: dict[str, Any], *, delivery_id: str | None = None
    ) -> httpx.Response:
        body = orjson.dumps(payload)
        headers = SHOPIFY.sign(
            body,
            self.secret,
            topic=topic,
            delivery_id=delivery_id or fresh_id(),
            timestamp=int(time.time()),
        )
        return self.client.post(f"/webhooks/{self.source}", content=body, headers=headers)

    def send(
        self, topic: str, payload: dict[str, Any], *, delivery_id: str | None = None
    ) -> httpx.Response:
        response = self.post(topic, payload, delivery_id=delivery_id)
        assert response.status_code in (200, 202), response.text
        return response

    def order(
        self,
        gross: str = "100.00",
        discounts: str = "0.00",
        *,
        created: datetime | None = None,
        currency: str = "USD",
        cart_token: str | None = None,
        checkout_token: str | None = None,
        delivery_id: str | None = None,
    ) -> httpx.Response:
        Store._next_order += 1
        payload = order_payload(
            Store._next_order,
            created or datetime.now(UTC),
            gross=gross,
            discounts=discounts,
            currency=currency,
            cart_token=cart_token,
            checkout_token=checkout_token,
        )
        return self.send("orders/create", payload, delivery_id=delivery_id)

    def cart(self, token: str, created: datetime | None = None) -> httpx.Response:
        payload = copy.deepcopy(CART)
        stamp = (created or datetime.now(UTC)).isoformat()
        payload.update(id=token, token=token, created_at=stamp, updated_at=stamp)
        return self.send("carts/create", payload)

    def checkout(
        self, token: str, cart_token: str | None, created: datetime | None = None
    ) -> httpx.Response:
        payload = copy.deepcopy(CHECKOUT)
        stamp = (created or datetime.now(UTC)).isoformat()
        payload.update(token=token, cart_token=cart_token, created_at=stamp, updated_at=stamp)
        return self.send("checkouts/create", payload)

    def unusable(self) -> httpx.Response:
        """An authentic delivery of a topic ShopPulse does not map: quarantined (202)."""
        response = self.send("products/update", {"id": 1, "title": "Snowboard"})
        assert response.status_code == 202, response.text
        return response

    def forged(self) -> httpx.Response:
        """A delivery signed with the wrong secret: rejected (401), only counted."""
        body = orjson.dumps({"id": 1})
        headers = SHOPIFY.sign(
            body, "not-the-secret", topic="orders/create", delivery_id=fresh_id(), timestamp=0
        )
        response = self.client.post(f"/webhooks/{self.source}", content=body, headers=headers)
        assert response.status_code == 401, response.text
        return response


def wait_for(read: Callable[[], Any], done: Callable[[Any], bool], *, timeout: float = 15.0) -> Any:
    """Call `read` until `done(value)`; return the value, or fail with the last one seen."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still not there after {timeout:g} s: {value!r}")
        time.sleep(0.05)
