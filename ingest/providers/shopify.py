"""Shopify: base64 HMAC-SHA256 of the raw body in `X-Shopify-Hmac-Sha256`.

Delivery id: `X-Shopify-Webhook-Id` (unchanged when Shopify retries). Money: the `shop_money`
side of the `*_set` fields, falling back to the plain fields (which are in shop currency).
Orders carry their `name` (`#1001`) and `line_items` (unit `price` and the line's
`discount_allocations`; unit price x quantity sums to `total_line_items_price`); checkouts carry
their value, `total_line_items_price`, and `total_discounts`.

Topic: `X-Shopify-Topic`, which the signature does not cover. It is believed only where the signed
body agrees (`check_topic`): `orders/delete` needs `{"id": ...}` alone, `orders/cancelled` a set
`cancelled_at`, `refunds/create` a refund, and no topic takes a body that is evidently another
kind; otherwise the delivery is quarantined ("topic does not match the signed body").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

from ingest.events import CanonicalEvent, OrderLine
from ingest.providers.base import (
    DeliveryInfo,
    Headers,
    SignatureError,
    UnusableDelivery,
    any_secret_matches,
    b64_hmac_sha256,
    body_digest,
    build_event,
    build_lines,
    get_id,
    is_deletion_body,
    optional_text,
    parse_money,
    parse_time,
    require_mapping,
    topic_mismatch,
)
from ingest.quarantine import UNKNOWN_TOPIC

CART_TOPICS = frozenset({"carts/create", "carts/update"})
CHECKOUT_TOPICS = frozenset({"checkouts/create", "checkouts/update"})
ORDER_TOPICS = frozenset({"orders/create", "orders/updated", "orders/paid", "orders/cancelled"})
OTHER_TOPICS = frozenset({"checkouts/delete", "orders/delete", "refunds/create"})

#: Fields that only one kind of Shopify body has. The body is signed, the X-Shopify-Topic header
#: is not: a topic is believed only where the body does not say it is something else.
_ORDER_FIELDS = frozenset({"order_number", "financial_status", "confirmation_number"})
_CHECKOUT_FIELDS = frozenset({"abandoned_checkout_url"})
_REFUND_FIELDS = frozenset({"refund_line_items", "order_id"})

#: The body kinds (see `_body_kind`) each topic accepts, the one it needs first; "unclear" (no
#: field of any kind) is accepted where a minimal body of that topic would be.
_TOPIC_BODIES: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(CART_TOPICS, ("a cart", "unclear")),
    **dict.fromkeys(CHECKOUT_TOPICS, ("a checkout", "unclear")),
    **dict.fromkeys(ORDER_TOPICS, ("an order", "unclear")),
    "checkouts/delete": ("a checkout deletion", "unclear", "a deletion notice"),
    "orders/delete": ("a deletion notice",),
    "refunds/create": ("a refund",),
}

_ORDER_ACTIONS = {
    "orders/create": "create",
    "orders/updated": "update",
    "orders/paid": "paid",
    "orders/cancelled": "cancel",
}


def _shop_money(obj: Mapping[str, Any], field: str) -> tuple[Decimal | None, str | None]:
    """Amount and currency of `field`, preferring `<field>_set.shop_money`."""
    money_set = obj.get(f"{field}_set")
    if isinstance(money_set, Mapping):
        shop = money_set.get("shop_money")
        if isinstance(shop, Mapping) and shop.get("amount") is not None:
            code = shop.get("currency_code")
            return parse_money(shop["amount"], f"{field}_set.shop_money.amount"), (
                code if isinstance(code, str) else None
            )
    if obj.get(field) is not None:
        return parse_money(obj[field], field), None
    return None, None


def _body_kind(obj: Mapping[str, Any]) -> str:
    """What a Shopify body evidently is, from fields only that kind has; "unclear" otherwise."""
    keys = obj.keys()
    if is_deletion_body(obj):
        return "a deletion notice"
    if not _REFUND_FIELDS.isdisjoint(keys):
        return "a refund"
    if not _ORDER_FIELDS.isdisjoint(keys):
        return "an order"
    if not _CHECKOUT_FIELDS.isdisjoint(keys):
        return "a checkout"
    if {"token", "line_items"} <= keys and not {"cart_token", "currency"} & keys:
        return "a cart"
    return "unclear"


def check_topic(topic: str, obj: Mapping[str, Any]) -> None:
    """Raise UnusableDelivery (quarantine) unless the signed body agrees with the topic."""
    allowed = _TOPIC_BODIES[topic]
    found = _body_kind(obj)
    if found not in allowed:
        raise topic_mismatch(topic, allowed[0], found)
    if topic == "orders/cancelled" and obj.get("cancelled_at") is None:
        raise topic_mismatch(topic, "a cancelled order (cancelled_at set)", "not cancelled")


def _lines(obj: Mapping[str, Any]) -> tuple[OrderLine, ...] | None:
    """`line_items` as canonical lines: unit `price` and the `discount_allocations` of each line
    in shop money; None when the list is missing or a line is unusable."""
    items = obj.get("line_items")
    if not isinstance(items, list):
        return None
    lines = []
    try:
        for item in items:
            if not isinstance(item, Mapping):
                return None
            price, _ = _shop_money(item, "price")
            allocations = item.get("discount_allocations") or []
            if not isinstance(allocations, list):
                return None
            discount = Decimal(0)
            for allocation in allocations:
                if isinstance(allocation, Mapping):
                    discount += _shop_money(allocation, "amount")[0] or Decimal(0)
            lines.append(
                {
                    "product_id": get_id(item, "product_id", required=False),
                    "variant_id": get_id(item, "variant_id", required=False),
                    "sku": optional_text(item.get("sku")),
                    "title": optional_text(item.get("title")) or optional_text(item.get("name")),
                    "quantity": item.get("quantity"),
                    "unit_price": price,
                    "discount": discount,
                }
            )
    except UnusableDelivery:
        return None
    return build_lines(lines)


def _checkout_value(obj: Mapping[str, Any]) -> tuple[Decimal | None, Decimal | None]:
    """A checkout's `total_line_items_price` and `total_discounts` (None when unusable: they
    are informational, never a reason to quarantine a checkout)."""
    try:
        return _shop_money(obj, "total_line_items_price")[0], _shop_money(obj, "total_discounts")[0]
    except UnusableDelivery:
        return None, None


class Shopify:
    name: ClassVar[str] = "shopify"
    topics: ClassVar[frozenset[str]] = CART_TOPICS | CHECKOUT_TOPICS | ORDER_TOPICS | OTHER_TOPICS
    kept_headers: ClassVar[tuple[str, ...]] = (
        "x-shopify-topic",
        "x-shopify-webhook-id",
        "x-shopify-shop-domain",
        "x-shopify-triggered-at",
        "x-shopify-event-id",
        "x-shopify-api-version",
    )
    single_headers: ClassVar[tuple[str, ...]] = (
        "x-shopify-hmac-sha256",
        "x-shopify-topic",
        "x-shopify-webhook-id",
    )

    def verify(self, body: bytes, headers: Headers, secrets: Sequence[str], now: datetime) -> None:
        given = headers.get("x-shopify-hmac-sha256")
        if not given:
            raise SignatureError("missing X-Shopify-Hmac-Sha256 header")
        if not any_secret_matches(
            lambda secret: b64_hmac_sha256(secret.encode(), body), given.strip(), secrets
        ):
            raise SignatureError("X-Shopify-Hmac-Sha256 does not match the body for any secret")

    def is_ping(self, body: bytes, headers: Headers) -> bool:
        return False

    def delivery_info(self, body: bytes, headers: Headers, payload: Any) -> DeliveryInfo:
        delivery_id = headers.get("x-shopify-webhook-id", "").strip() or body_digest(body)
        return DeliveryInfo(delivery_id=delivery_id[:256], topic=headers.get("x-shopify-topic", ""))

    def normalize(self, topic: str, payload: Any, headers: Headers) -> list[CanonicalEvent]:
        if not topic:
            raise UnusableDelivery("missing X-Shopify-Topic header")
        if topic not in self.topics:
            raise UnusableDelivery(f"{UNKNOWN_TOPIC} '{topic[:80]}'")
        obj = require_mapping(payload)
        check_topic(topic, obj)
        if topic in CART_TOPICS:
            return [self._cart(topic, obj)]
        if topic in CHECKOUT_TOPICS:
            return [self._checkout(topic, obj)]
        if topic in ORDER_TOPICS:
            return [self._order(topic, obj)]
        if topic == "checkouts/delete":
            token = get_id(obj, "token", required=False) or get_id(obj, "id")
            return [
                build_event(
                    kind="checkout",
                    action="delete",
                    entity_id=token,
                    cart_token=get_id(obj, "cart_token", required=False),
                    deleted=True,
                )
            ]
        if topic == "orders/delete":
            return [
                build_event(
                    kind="order", action="delete", entity_id=get_id(obj, "id"), deleted=True
                )
            ]
        return [self._refund(obj)]

    def _cart(self, topic: str, obj: Mapping[str, Any]) -> CanonicalEvent:
        currency = None
        items = obj.get("line_items")
        if isinstance(items, list) and items and isinstance(items[0], Mapping):
            _, currency = _shop_money(items[0], "price")
        return build_event(
            kind="cart",
            action="create" if topic == "carts/create" else "update",
            entity_id=get_id(obj, "token"),
            created_at=parse_time(obj, "created_at"),
            updated_at=parse_time(obj, "updated_at"),
            cart_token=get_id(obj, "token"),
            currency=currency,
        )

    def _checkout(self, topic: str, obj: Mapping[str, Any]) -> CanonicalEvent:
        token = get_id(obj, "token")
        value, discounts = _checkout_value(obj)
        return build_event(
            kind="checkout",
            action="create" if topic == "checkouts/create" else "update",
            entity_id=token,
            created_at=parse_time(obj, "created_at"),
            updated_at=parse_time(obj, "updated_at"),
            cart_token=get_id(obj, "cart_token", required=False),
            checkout_token=token,
            currency=obj.get("currency"),
            gross_sales=value,
            discounts=discounts,
        )

    def _order(self, topic: str, obj: Mapping[str, Any]) -> CanonicalEvent:
        gross, gross_currency = _shop_money(obj, "total_line_items_price")
        discounts, _ = _shop_money(obj, "total_discounts")
        if gross is None:
            raise UnusableDelivery("field 'total_line_items_price' is missing")
        test = obj.get("test", False)
        if not isinstance(test, bool):
            raise UnusableDelivery("field 'test' must be true or false")
        order_id = get_id(obj, "id")
        return build_event(
            kind="order",
            action=_ORDER_ACTIONS[topic],
            entity_id=order_id,
            created_at=parse_time(obj, "processed_at", required=False)
            or parse_time(obj, "created_at"),
            updated_at=parse_time(obj, "updated_at"),
            cart_token=get_id(obj, "cart_token", required=False),
            checkout_token=get_id(obj, "checkout_token", required=False),
            order_id=order_id,
            currency=gross_currency or obj.get("currency"),
            gross_sales=gross,
            discounts=discounts if discounts is not None else Decimal(0),
            name=optional_text(obj.get("name")),
            lines=_lines(obj),
            test=test,
            cancelled=obj.get("cancelled_at") is not None,
        )

    def _refund(self, obj: Mapping[str, Any]) -> CanonicalEvent:
        amount = Decimal(0)
        currency: str | None = None
        items = obj.get("refund_line_items") or []
        if not isinstance(items, list):
            raise UnusableDelivery("field 'refund_line_items' must be a list")
        for index, item in enumerate(items):
            item = require_mapping(item, f"refund_line_items[{index}]")
            subtotal, code = _shop_money(item, "subtotal")
            if subtotal is None:
                raise UnusableDelivery(f"field 'refund_line_items[{index}].subtotal' is missing")
            amount += subtotal
            currency = currency or code
        created = parse_time(obj, "created_at", required=False) or parse_time(obj, "processed_at")
        return build_event(
            kind="refund",
            action="refund",
            entity_id=get_id(obj, "id"),
            created_at=created,
            updated_at=created,
            order_id=get_id(obj, "order_id"),
            currency=currency,
            refund_amount=amount,
        )

    def sign(
        self, body: bytes, secret: str, *, topic: str, delivery_id: str, timestamp: int
    ) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "X-Shopify-Hmac-Sha256": b64_hmac_sha256(secret.encode(), body),
            "X-Shopify-Topic": topic,
            "X-Shopify-Webhook-Id": delivery_id,
            "X-Shopify-Shop-Domain": "shop.example.com",
            "X-Shopify-Triggered-At": datetime.fromtimestamp(timestamp, UTC).isoformat(),
            "X-Shopify-Event-Id": f"evt-{delivery_id}",
        }
