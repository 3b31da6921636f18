"""Builds Shopify deliveries from the real fixture shapes and sends them through the real app."""

from __future__ import annotations

import copy
import itertools
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
from fastapi.testclient import TestClient

from ingest.sources import Source
from metrics.recompute import Difference, check
from shoppulse.service import create_app
from shoppulse.settings import Settings
from tests.conftest import SECRET, FrozenClock, fixture_json, signed_post
from tests.helpers.app import service_of

CART = fixture_json("shopify", "carts_create.json")
CHECKOUT = fixture_json("shopify", "checkouts_create.json")
ORDER = fixture_json("shopify", "orders_create.json")
REFUND = fixture_json("shopify", "refunds_create.json")


def iso(moment: datetime) -> str:
    return moment.isoformat()


def money_set(amount: Decimal, currency: str) -> dict[str, Any]:
    value = {"amount": str(amount), "currency_code": currency}
    return {"shop_money": value, "presentment_money": value}


class Shop:
    """A store that sends signed Shopify deliveries to a running ShopPulse app."""

    def __init__(self, client: TestClient, source: str = "acme") -> None:
        self.client = client
        self.source = source
        self._ids = itertools.count(1)

    def send(self, topic: str, payload: dict[str, Any], delivery_id: str | None = None) -> Any:
        delivery_id = delivery_id or f"{self.source}-{next(self._ids)}"
        response = signed_post(
            self.client,
            self.source,
            "shopify",
            orjson.dumps(payload),
            topic=topic,
            delivery_id=delivery_id,
            secret=SECRET,
        )
        assert response.status_code in (200, 202), response.text
        return response

    def cart(
        self,
        token: str,
        created: datetime,
        updated: datetime | None = None,
        topic: str = "carts/create",
        **kw: Any,
    ) -> Any:
        payload = copy.deepcopy(CART)
        payload.update(
            id=token, token=token, created_at=iso(created), updated_at=iso(updated or created)
        )
        return self.send(topic, payload, **kw)

    def checkout(
        self,
        token: str,
        cart_token: str | None,
        created: datetime,
        updated: datetime | None = None,
        topic: str = "checkouts/create",
        **kw: Any,
    ) -> Any:
        payload = copy.deepcopy(CHECKOUT)
        payload.update(
            token=token,
            cart_token=cart_token,
            created_at=iso(created),
            updated_at=iso(updated or created),
        )
        return self.send(topic, payload, **kw)

    def order(
        self,
        order_id: str,
        created: datetime,
        *,
        gross: str = "100.00",
        discounts: str = "0.00",
        currency: str = "USD",
        updated: datetime | None = None,
        cart_token: str | None = None,
        checkout_token: str | None = None,
        test: bool = False,
        cancelled: bool = False,
        topic: str = "orders/create",
        **kw: Any,
    ) -> Any:
        payload = copy.deepcopy(ORDER)
        payload.update(
            id=order_id,
            created_at=iso(created),
            processed_at=iso(created),
            updated_at=iso(updated or created),
            currency=currency,
            test=test,
            cancelled_at=iso(updated or created) if cancelled else None,
            cart_token=cart_token,
            checkout_token=checkout_token,
            total_line_items_price=gross,
            total_discounts=discounts,
            total_line_items_price_set=money_set(Decimal(gross), currency),
            total_discounts_set=money_set(Decimal(discounts), currency),
        )
        return self.send(topic, payload, **kw)

    def delete_order(self, order_id: str, **kw: Any) -> Any:
        return self.send("orders/delete", {"id": order_id}, **kw)

    def refund(
        self,
        refund_id: str,
        order_id: str,
        created: datetime,
        amounts: list[str],
        currency: str = "USD",
        **kw: Any,
    ) -> Any:
        payload = copy.deepcopy(REFUND)
        template = payload["refund_line_items"][0]
        items = []
        for amount in amounts:
            item = copy.deepcopy(template)
            item.update(subtotal=float(amount), subtotal_set=money_set(Decimal(amount), currency))
            items.append(item)
        payload.update(
            id=refund_id,
            order_id=order_id,
            created_at=iso(created),
            processed_at=iso(created),
            refund_line_items=items,
        )
        return self.send("refunds/create", payload, **kw)


def start_service(settings: Settings, sources: dict[str, Source], clock: FrozenClock) -> TestClient:
    """The real app with its lifespan running (a restart is `__exit__` and another start)."""
    client = TestClient(create_app(settings, sources, clock=clock))
    client.__enter__()
    return client


def differences(client: TestClient, now: datetime | None = None) -> list[Difference]:
    service = service_of(client)
    service.worker.fold_now()
    return check(
        service.con.cursor(),
        cart_abandon_after=service.settings.cart_abandon_after,
        checkout_abandon_after=service.settings.checkout_abandon_after,
        now=now,
    )


WEEK = {"from": "2020-01-01T00:00:00Z", "to": "2030-01-01T00:00:00Z"}
