"""BigCommerce: Standard Webhooks signatures keyed with the app's client secret, or a custom header.

Signature, as BigCommerce documents it ("HTTPS Webhooks Overview", section "Webhook signature"):
deliveries carry `webhook-id`, `webhook-timestamp` and `webhook-signature` (`v1,<base64>`), the
Standard Webhooks scheme over `"{webhook-id}.{webhook-timestamp}." + raw body`. BigCommerce's
samples hand the Standard Webhooks library `base64(client_secret)` as the secret; the library
base64-decodes it, so the HMAC-SHA256 key is simply the client secret's UTF-8 bytes. That is what
is implemented: configure the app's client secret as it is shown in the Developer Portal
(not base64-encoded, no `whsec_` prefix). A signed timestamp further than the tolerance from the
service clock, in either direction, is rejected.

Custom header (the older scheme: a webhook created with `"headers": {...}` gets those headers on
every delivery): a source secret `header:<Name>:<value>` accepts a delivery that carries header
`Name` with exactly `value` (constant-time compare). It signs nothing and has no timestamp, so it
cannot detect a tampered body or a replay; prefer the client secret. A delivery passes when
either scheme passes for any configured secret.

Delivery id: BigCommerce puts the same `hash` in every firing of one event, but its published
examples share one `hash` between different scopes (`store/cart/created`, `/updated`,
`/abandoned` of one cart), and its hash is computed from the payload, which for two updates of one
cart holds the same ids. The delivery id is therefore `<scope>:<created_at>:<hash>`: a repeated
firing is a duplicate, two distinct events are not. Without `hash`: `webhook-id`, else the body's
SHA-256.

Mapping. Payloads carry only ids, so money is unknown: order events have gross_sales, discounts
and currency None (an enrichment step may fetch them from the store API). The envelope's
`created_at` (Unix seconds; else the signed `webhook-timestamp`) is the event time. Payloads carry
no entity timestamps, so it is every event's updated_at and also its created_at: exact for the
creation scopes (`cart/created`, `order/created`, `cart/converted` for its order), and for later
scopes the best time known (the entity existed by then; its earliest event is the best estimate
of its creation).

- `store/cart/created`, `updated`: the cart (`data.id`).
- `store/cart/lineItem/created`, `updated`, `deleted`: activity of the cart `data.cartId`.
- `store/cart/deleted`: the cart, deleted.
- `store/cart/abandoned`: the cart, abandoned (BigCommerce's own rule: an hour of inactivity).
- `store/cart/converted`: the cart with order_id = `data.orderId`, and that order with
  cart_token = the cart, so the cart converts.
- `store/order/created`: the order (`data.id`).
- `store/order/updated`: the order with no updated_at: it says that the order changed, not how,
  so it never outranks a status.
- `store/order/statusUpdated`: the order; cancelled when `data.status.new_status_id` is
  5 (Cancelled), 6 (Declined) or 0 (Incomplete: the checkout was not finished).
- `store/order/refund/created`: a refund (entity = `data.refund.refund_id`, order_id = `data.id`,
  amount unknown).

BigCommerce has no test flag: test is always false.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

from ingest.events import Action, CanonicalEvent
from ingest.providers import _standard_webhooks as swh
from ingest.providers.base import (
    DeliveryInfo,
    Headers,
    SignatureError,
    UnusableDelivery,
    body_digest,
    build_event,
    get_id,
    require_mapping,
)
from ingest.quarantine import UNKNOWN_SCOPE

HEADER_SECRET_PREFIX = "header:"

CART_TOPICS = frozenset({"store/cart/created", "store/cart/updated"})
LINE_ITEM_TOPICS = frozenset(
    {"store/cart/lineItem/created", "store/cart/lineItem/updated", "store/cart/lineItem/deleted"}
)
ORDER_TOPICS = frozenset(
    {"store/order/created", "store/order/updated", "store/order/statusUpdated"}
)
OTHER_TOPICS = frozenset(
    {
        "store/cart/deleted",
        "store/cart/abandoned",
        "store/cart/converted",
        "store/order/refund/created",
    }
)

#: Order status ids after which the order does not count (the rest are live orders).
NOT_COUNTED_STATUSES = {0: "Incomplete", 5: "Cancelled", 6: "Declined"}
#: Every BigCommerce order status id, for reasons and docs.
ORDER_STATUSES = {
    0: "Incomplete",
    1: "Pending",
    2: "Shipped",
    3: "Partially Shipped",
    4: "Refunded",
    5: "Cancelled",
    6: "Declined",
    7: "Awaiting Payment",
    8: "Awaiting Pickup",
    9: "Awaiting Shipment",
    10: "Completed",
    11: "Awaiting Fulfillment",
    12: "Manual Verification Required",
    13: "Disputed",
    14: "Partially Refunded",
}


def parse_header_secret(secret: str) -> tuple[str, str] | None:
    """`header:<Name>:<value>` as (lower-case name, value); None for any other secret."""
    if not secret.startswith(HEADER_SECRET_PREFIX):
        return None
    name, sep, value = secret[len(HEADER_SECRET_PREFIX) :].partition(":")
    if not sep or not name.strip() or not value:
        return None
    return name.strip().lower(), value


def _unix_time(value: Any, what: str) -> datetime:
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 10**11:
        raise UnusableDelivery(f"{what} must be Unix seconds")
    return datetime.fromtimestamp(value, UTC)


def _nested_id(obj: Mapping[str, Any], field: str, where: str) -> str:
    try:
        value = get_id(obj, field)
    except UnusableDelivery as exc:
        raise UnusableDelivery(str(exc).replace(f"'{field}'", f"'{where}.{field}'", 1)) from None
    if value is None:  # pragma: no cover - get_id(required=True) never returns None
        raise UnusableDelivery(f"field '{where}.{field}' is missing")
    return value


class BigCommerce:
    name: ClassVar[str] = "bigcommerce"
    topics: ClassVar[frozenset[str]] = CART_TOPICS | LINE_ITEM_TOPICS | ORDER_TOPICS | OTHER_TOPICS
    kept_headers: ClassVar[tuple[str, ...]] = (swh.ID_HEADER, swh.TIMESTAMP_HEADER, "user-agent")
    single_headers: ClassVar[tuple[str, ...]] = swh.HEADERS

    def __init__(self, tolerance_seconds: int = 300) -> None:
        self.tolerance_seconds = tolerance_seconds

    # ------------------------------------------------------------------ signatures

    def verify(self, body: bytes, headers: Headers, secrets: Sequence[str], now: datetime) -> None:
        rules = [rule for rule in map(parse_header_secret, secrets) if rule is not None]
        keys = [
            secret.encode("utf-8")
            for secret in secrets
            if not secret.startswith(HEADER_SECRET_PREFIX) and secret
        ]
        header_matched = False
        for name, value in rules:  # every rule is compared: no early exit
            given = headers.get(name, "")
            if hmac.compare_digest(
                value.encode("utf-8", "surrogatepass"), given.encode("utf-8", "surrogatepass")
            ):
                header_matched = True
        if header_matched:
            return
        signature_error: SignatureError | None = None
        if keys and swh.has_signature(headers):
            try:
                swh.verify(body, headers, keys, now, self.tolerance_seconds)
                return
            except SignatureError as exc:
                signature_error = exc
        if signature_error is not None:
            raise signature_error
        if keys:
            raise SignatureError("missing webhook-signature header")
        if rules:
            raise SignatureError("the configured custom header is missing or has another value")
        raise SignatureError("no usable secret is configured for this source")

    def is_ping(self, body: bytes, headers: Headers) -> bool:
        return False

    def delivery_info(self, body: bytes, headers: Headers, payload: Any) -> DeliveryInfo:
        topic = ""
        delivery_id = ""
        if isinstance(payload, Mapping):
            scope = payload.get("scope")
            topic = scope if isinstance(scope, str) else ""
            digest = payload.get("hash")
            if isinstance(digest, str) and digest:
                created = payload.get("created_at")
                stamp = "" if created is None or isinstance(created, dict | list) else created
                delivery_id = f"{topic}:{stamp}:{digest}"
        delivery_id = delivery_id or headers.get(swh.ID_HEADER, "").strip() or body_digest(body)
        return DeliveryInfo(delivery_id=delivery_id[:256], topic=topic)

    # ------------------------------------------------------------------ events

    def normalize(self, topic: str, payload: Any, headers: Headers) -> list[CanonicalEvent]:
        if not topic:
            raise UnusableDelivery("field 'scope' is missing")
        if topic not in self.topics:
            raise UnusableDelivery(f"{UNKNOWN_SCOPE} '{topic[:80]}'")
        envelope = require_mapping(payload)
        data = require_mapping(envelope.get("data"), "field 'data'")
        at = self._event_time(envelope, headers)
        if topic in LINE_ITEM_TOPICS:
            cart = _nested_id(data, "cartId", "data")
            return [self._cart("update", cart, at)]
        if topic in CART_TOPICS or topic in ("store/cart/deleted", "store/cart/abandoned"):
            cart = _nested_id(data, "id", "data")
            if topic == "store/cart/created":
                return [self._cart("create", cart, at)]
            if topic == "store/cart/updated":
                return [self._cart("update", cart, at)]
            if topic == "store/cart/deleted":
                return [self._cart("delete", cart, at, deleted=True)]
            return [self._cart("abandon", cart, at, abandoned=True)]
        if topic == "store/cart/converted":
            cart = _nested_id(data, "id", "data")
            order = _nested_id(data, "orderId", "data")
            return [
                self._cart("convert", cart, at, order_id=order),
                self._order("create", order, at, updated=at, cart_token=cart),
            ]
        order = _nested_id(data, "id", "data")
        if topic == "store/order/created":
            return [self._order("create", order, at, updated=at)]
        if topic == "store/order/updated":
            return [self._order("update", order, at, updated=None)]
        if topic == "store/order/statusUpdated":
            status = require_mapping(data.get("status"), "field 'data.status'")
            new_status = status.get("new_status_id")
            if isinstance(new_status, bool) or not isinstance(new_status, int):
                raise UnusableDelivery("field 'data.status.new_status_id' must be an integer")
            cancelled = new_status in NOT_COUNTED_STATUSES
            return [
                self._order(
                    "cancel" if new_status in (5, 6) else "update",
                    order,
                    at,
                    updated=at,
                    cancelled=cancelled,
                )
            ]
        refund = require_mapping(data.get("refund"), "field 'data.refund'")
        return [
            build_event(
                kind="refund",
                action="refund",
                entity_id=_nested_id(refund, "refund_id", "data.refund"),
                created_at=at,
                updated_at=at,
                order_id=order,
            )
        ]

    @staticmethod
    def _event_time(envelope: Mapping[str, Any], headers: Headers) -> datetime:
        if envelope.get("created_at") is not None:
            return _unix_time(envelope["created_at"], "field 'created_at'")
        stamp = headers.get(swh.TIMESTAMP_HEADER, "").strip()
        if stamp:
            return _unix_time(stamp, "header webhook-timestamp")
        raise UnusableDelivery("field 'created_at' is missing (and no webhook-timestamp header)")

    @staticmethod
    def _cart(
        action: Action,
        cart: str,
        at: datetime,
        *,
        order_id: str | None = None,
        deleted: bool = False,
        abandoned: bool = False,
    ) -> CanonicalEvent:
        return build_event(
            kind="cart",
            action=action,
            entity_id=cart,
            created_at=at,
            updated_at=at,
            cart_token=cart,
            order_id=order_id,
            deleted=deleted,
            abandoned=abandoned,
        )

    @staticmethod
    def _order(
        action: Action,
        order: str,
        at: datetime,
        *,
        updated: datetime | None,
        cart_token: str | None = None,
        cancelled: bool = False,
    ) -> CanonicalEvent:
        return build_event(
            kind="order",
            action=action,
            entity_id=order,
            created_at=at,
            updated_at=updated,
            cart_token=cart_token,
            order_id=order,
            cancelled=cancelled,
        )

    def sign(
        self, body: bytes, secret: str, *, topic: str, delivery_id: str, timestamp: int
    ) -> dict[str, str]:
        """What BigCommerce sends: Standard Webhooks headers, or the configured custom header."""
        headers = {"Content-Type": "application/json", "User-Agent": "BigCommerce-Webhooks"}
        rule = parse_header_secret(secret)
        if rule is not None:
            name = secret[len(HEADER_SECRET_PREFIX) :].partition(":")[0].strip()
            headers[name] = rule[1]
            return headers
        headers.update(swh.sign(secret.encode("utf-8"), delivery_id, timestamp, body))
        return headers
