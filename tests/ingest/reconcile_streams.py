"""Delivery streams of Shopify, WooCommerce, BigCommerce and Stripe stores, and the truth behind.

A stream is the signed webhooks a store sends, in order, for orders that change (created,
edited, cancelled, refunded) and Stripe Checkout sessions (completed or expired, refunded); the
truth is what the store's API answers at the end: each order's latest version in the API's shape
(Shopify GraphQL nodes, WooCommerce wc/v3 orders, BigCommerce V2 orders, Stripe sessions and
refunds).
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

import orjson
from fastapi.testclient import TestClient

from tests.conftest import SECRET, FrozenClock, fixture_json, signed_post
from tests.ingest.bigcommerce_stand_in import v2_order
from tests.ingest.store_api_stand_in import StoreApi, shopify_line_item
from tests.metrics.shop import Shop

START = datetime(2025, 12, 20, 9, 0, tzinfo=UTC)
FROZEN = FrozenClock().now  # the services' clock (signed timestamps must be near it)
Send = Callable[[TestClient], Any]


def money(amount: Decimal, currency: str = "USD") -> dict[str, Any]:
    return {"shopMoney": {"amount": str(amount), "currencyCode": currency}}


def gmt(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


@dataclass
class Stream:
    sends: list[Send] = field(default_factory=list)
    shopify_truth: list[dict[str, Any]] = field(default_factory=list)
    woo_truth: list[dict[str, Any]] = field(default_factory=list)
    bc_truth: list[dict[str, Any]] = field(default_factory=list)
    stripe_sessions: list[dict[str, Any]] = field(default_factory=list)
    stripe_refunds: list[dict[str, Any]] = field(default_factory=list)

    def fill(self, api: StoreApi) -> None:
        api.shopify_orders = self.shopify_truth
        api.woo_orders = self.woo_truth
        api.bc_orders = self.bc_truth
        api.stripe_sessions = self.stripe_sessions
        api.stripe_refunds = self.stripe_refunds


def shopify_orders(stream: Stream, rng: random.Random, count: int, source: str = "shop") -> None:
    for number in range(1, count + 1):
        order_id = str(1000 + number)
        created = START + timedelta(minutes=7 * number)
        lines = [Decimal(rng.choice(["9.50", "20.00", "35.25"])) for _ in range(rng.randint(1, 3))]
        if number == 1:
            lines = [Decimal("1.00")] * 30  # more line items than one GraphQL page holds
        discounts = Decimal(rng.choice(["0.00", "5.00"]))
        test = rng.random() < 0.1
        updated = created
        cancelled: datetime | None = None
        versions: list[tuple[str, datetime, list[Decimal], datetime | None]] = [
            ("orders/create", created, list(lines), None)
        ]
        if rng.random() < 0.4:  # edited: an item added
            updated = created + timedelta(minutes=30)
            lines.append(Decimal("12.00"))
            versions.append(("orders/updated", updated, list(lines), None))
        if rng.random() < 0.2:
            updated = cancelled = updated + timedelta(minutes=40)
            versions.append(("orders/cancelled", updated, list(lines), cancelled))
        refunds: list[dict[str, Any]] = []
        if cancelled is None and rng.random() < 0.3:
            refunded = updated + timedelta(hours=2)
            amount = lines[0]
            refunds.append(
                {
                    "legacyResourceId": str(5000 + number),
                    "createdAt": refunded.isoformat(),
                    "refundLineItems": {"nodes": [{"subtotalSet": money(amount)}]},
                }
            )
            updated = refunded + timedelta(seconds=1)  # the refund updates the order too
            versions.append(("orders/updated", updated, list(lines), None))

        for topic, moment, items, cancelled_at in versions:
            stream.sends.append(
                _shopify_order_send(
                    source,
                    order_id,
                    created,
                    topic,
                    moment,
                    gross=sum(items, Decimal(0)),
                    discounts=discounts,
                    cancelled=cancelled_at is not None,
                    test=test,
                )
            )
        for refund in refunds:
            stream.sends.append(_shopify_refund_send(source, order_id, refund))
        stream.shopify_truth.append(
            {
                "legacyResourceId": order_id,
                "createdAt": created.isoformat(),
                "processedAt": created.isoformat(),
                "updatedAt": updated.isoformat(),
                "cancelledAt": cancelled.isoformat() if cancelled else None,
                "test": test,
                "cartToken": None,
                "checkoutToken": f"co-{order_id}",
                "currencyCode": "USD",
                "totalDiscountsSet": money(discounts),
                "lineItems": [
                    shopify_line_item(index, str(item), "USD") for index, item in enumerate(lines)
                ],
                "refunds": refunds,
            }
        )


def _shopify_order_send(
    source: str,
    order_id: str,
    created: datetime,
    topic: str,
    moment: datetime,
    *,
    gross: Decimal,
    discounts: Decimal,
    cancelled: bool,
    test: bool,
) -> Send:
    def send(client: TestClient) -> Any:
        return Shop(client, source).order(
            order_id,
            created,
            gross=str(gross),
            discounts=str(discounts),
            updated=moment,
            cancelled=cancelled,
            test=test,
            checkout_token=f"co-{order_id}",
            topic=topic,
            delivery_id=f"{order_id}-{topic}-{moment.isoformat()}",
        )

    return send


def _shopify_refund_send(source: str, order_id: str, refund: dict[str, Any]) -> Send:
    def send(client: TestClient) -> Any:
        amount = refund["refundLineItems"]["nodes"][0]["subtotalSet"]["shopMoney"]["amount"]
        return Shop(client, source).refund(
            refund["legacyResourceId"],
            order_id,
            datetime.fromisoformat(refund["createdAt"]),
            [amount],
            delivery_id=f"refund-{refund['legacyResourceId']}",
        )

    return send


WOO_ORDER = fixture_json("woocommerce", "order.updated.json")


def woo_orders(stream: Stream, rng: random.Random, count: int, source: str = "woo") -> None:
    for number in range(1, count + 1):
        order_id = 700 + number
        created = START + timedelta(minutes=11 * number)
        order = copy.deepcopy(WOO_ORDER)
        item = order["line_items"][0]
        order.update(
            id=order_id,
            status="processing",
            currency="EUR",
            date_created_gmt=gmt(created),
            date_modified_gmt=gmt(created),
            date_paid_gmt=gmt(created),
            discount_total=rng.choice(["0.00", "3.00"]),
            line_items=[dict(item, subtotal=rng.choice(["18.00", "40.00"]))],
            refunds=[],
        )
        versions = [("order.created", copy.deepcopy(order))]
        moment = created
        if rng.random() < 0.5:
            moment += timedelta(hours=1)
            order.update(status="completed", date_modified_gmt=gmt(moment))
            versions.append(("order.updated", copy.deepcopy(order)))
        if rng.random() < 0.3:
            moment += timedelta(hours=1)
            refund = {"id": 9000 + number, "reason": "", "total": "-5.00"}
            order.update(refunds=[refund], date_modified_gmt=gmt(moment))
            versions.append(("order.updated", copy.deepcopy(order)))
        if rng.random() < 0.15:
            moment += timedelta(hours=1)
            order.update(status="cancelled", date_modified_gmt=gmt(moment))
            versions.append(("order.updated", copy.deepcopy(order)))
        for topic, body in versions:
            stream.sends.append(partial(_woo_send, source=source, topic=topic, body=body))
        stream.woo_truth.append(order)


def _woo_send(client: TestClient, source: str, topic: str, body: dict[str, Any]) -> None:
    response = signed_post(
        client,
        source,
        "woocommerce",
        orjson.dumps(body),
        topic=topic,
        delivery_id=f"{body['id']}-{body['date_modified_gmt']}",
        secret=SECRET,
    )
    assert response.status_code == 200, response.text


BC_ORDER = fixture_json("bigcommerce", "store_order_created.json")
BC_STATUS = fixture_json("bigcommerce", "store_order_statusUpdated.json")


def bigcommerce_orders(stream: Stream, rng: random.Random, count: int, source: str = "bc") -> None:
    """Order webhooks carry only ids: amounts come from the API (enrichment), as in a store."""
    for number in range(1, count + 1):
        order_id = 300 + number
        created = START + timedelta(minutes=13 * number)
        modified, status = created, 11
        created_hook = copy.deepcopy(BC_ORDER)
        created_hook.update(created_at=int(created.timestamp()) + 2)
        created_hook["data"] = {"type": "order", "id": order_id}
        hooks = [created_hook]
        if rng.random() < 0.3:
            modified, status = created + timedelta(hours=1), 5  # cancelled
            hook = copy.deepcopy(BC_STATUS)
            hook.update(created_at=int(modified.timestamp()) + 2)
            hook["data"] = {
                "type": "order",
                "id": order_id,
                "status": {"previous_status_id": 11, "new_status_id": status},
            }
            hooks.append(hook)
        for hook in hooks:
            stream.sends.append(partial(_bc_send, source=source, hook=hook))
        stream.bc_truth.append(
            v2_order(
                order_id,
                created=created,
                modified=modified,
                status_id=status,
                subtotal=rng.choice(["50.0000", "120.0000"]),
            )
        )


def _bc_send(client: TestClient, source: str, hook: dict[str, Any]) -> None:
    response = signed_post(
        client,
        source,
        "bigcommerce",
        orjson.dumps(hook),
        topic=hook["scope"],
        delivery_id=f"{hook['scope']}-{hook['data']['id']}-{hook['created_at']}",
        secret=SECRET,
    )
    assert response.status_code == 200, response.text


def stripe_sessions(stream: Stream, rng: random.Random, count: int, source: str = "st") -> None:
    for number in range(1, count + 1):
        created = START + timedelta(minutes=17 * number)
        completed = rng.random() < 0.7
        session: dict[str, Any] = {
            "id": f"cs_live_{number:04}",
            "object": "checkout.session",
            "status": "complete" if completed else "expired",
            "mode": "payment",
            "payment_status": "paid" if completed else "unpaid",
            "payment_intent": f"pi_{number:04}" if completed else None,
            "amount_subtotal": rng.choice([1500, 4200]),
            "amount_total": 0,
            "total_details": {"amount_discount": rng.choice([0, 200])},
            "currency": "usd",
            "livemode": True,
            "created": int(created.timestamp()),
            "expires_at": int((created + timedelta(hours=24)).timestamp()),
        }
        topic = "checkout.session.completed" if completed else "checkout.session.expired"
        at = created + timedelta(minutes=5) if completed else created + timedelta(hours=24)
        stream.sends.append(_stripe_send(source, topic, at, session))
        stream.stripe_sessions.append(session)
        if completed and rng.random() < 0.3:
            refunded = created + timedelta(hours=2)
            refund = {
                "id": f"re_{number:04}",
                "object": "refund",
                "amount": 500,
                "charge": f"ch_{number:04}",
                "payment_intent": session["payment_intent"],
                "currency": "usd",
                "status": "succeeded",
                "created": int(refunded.timestamp()),
            }
            charge = {
                "id": refund["charge"],
                "object": "charge",
                "payment_intent": session["payment_intent"],
                "currency": "usd",
                "livemode": True,
                "amount_refunded": 500,
                "refunds": {"object": "list", "data": [refund], "has_more": False},
            }
            stream.sends.append(_stripe_send(source, "charge.refunded", refunded, charge))
            stream.stripe_refunds.append(refund)


def _stripe_send(source: str, topic: str, at: datetime, obj: dict[str, Any]) -> Send:
    event_id = f"evt_{obj['id']}_{topic}"
    event = {
        "id": event_id,
        "object": "event",
        "type": topic,
        "created": int(at.timestamp()),
        "livemode": True,
        "data": {"object": obj},
    }

    def send(client: TestClient) -> None:
        response = signed_post(
            client,
            source,
            "stripe",
            orjson.dumps(event),
            topic=topic,
            delivery_id=event_id,
            secret=SECRET,
            timestamp=int(FROZEN.timestamp()),
        )
        assert response.status_code == 200, response.text

    return send
