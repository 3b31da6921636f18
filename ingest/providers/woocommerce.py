"""WooCommerce: base64 HMAC-SHA256 of the raw body in `X-WC-Webhook-Signature`.

The key is the webhook's secret as UTF-8 bytes. Other headers: `X-WC-Webhook-Topic` (for
example `order.updated`), `-Resource`, `-Event`, `-ID`, `-Delivery-ID` and `-Source` (the shop's
URL). A body is the order exactly as the REST API (wc/v3) returns it; `order.deleted` sends only
`{"id": <order id>}`.

Ping: when a webhook is saved, WooCommerce posts an unsigned, form-encoded `webhook_id=<n>` and
refuses to save the webhook unless the answer is 2xx. A request is a ping only when its whole
body is `webhook_id=<digits>` and its content type is form-encoded (or absent); it gets a bare 200
and nothing is stored, so a ping can carry no data.

Delivery id: WooCommerce makes a new `X-WC-Webhook-Delivery-ID` for every delivery and signs no
timestamp, so the same order version can arrive under different ids. The id is therefore the
order version, `order:<id>:<date_modified_gmt>:<topic>`, when the body has an id and a
modification date (`date_modified_gmt`, else `date_modified`); else the header id; else the
body's SHA-256.

Mapping (per the metric contract's platform table; times are the `*_gmt` fields, which have no
offset and are UTC):

- `pending`, `failed`, `checkout-draft`: a checkout started (kind `checkout`, entity = order id).
- `processing`, `on-hold`, `completed`, `refunded`: an order, with `checkout_token` = order id so
  the checkout of the same id completes.
- `cancelled`: a cancelled order; `checkout_token` only if it was paid (`date_paid_gmt`), because
  WooCommerce also cancels unpaid pending orders, and those are abandoned checkouts.
- `trash`, or topic `order.deleted` (which WooCommerce sends when an order is moved to the trash):
  a deleted order. The trash is reversible: `order.restored` sends, before the events of the
  restored order, an order event with action `restore` dated by the body's `date_modified_gmt`,
  which undoes the deletions before it. The latest deletion or restore decides, by its time: a
  trashed body's `date_modified_gmt`, or for `order.deleted` (which carries no time) when it
  arrived. So a captured older body re-sent as `order.restored` cannot bring back an order
  trashed after that body's version.

Any other status (plugins add their own) is quarantined with its name, to be mapped and replayed.
`order.restored` is mapped by the status the order is restored to (after its restore marker).

- entity created_at = `date_created_gmt`, updated_at = `date_modified_gmt`.
- gross_sales = sum of `line_items[].subtotal` (line amounts before discounts, without tax);
  discounts = `discount_total` (without tax); currency = `currency`. Checkouts carry the same
  amounts as their value.
- name = `#` + `number`. Lines: `product_id` and `variation_id` (0: none), `sku`, `name` (HTML
  entities decoded), `quantity`, unit price = `subtotal` / `quantity` (rounded half-even to 4
  places in the rare case it does not divide), discount = `subtotal` - `total`.
- Refunds: every entry of the order's `refunds` array (whatever the status; partial refunds leave
  the status unchanged) becomes a refund event: entity = refund id, order_id = order id. The
  amount is the refunded line items' `total` (after discounts, before tax) when the entry lists
  `line_items` (as WooCommerce's refunds API does). A webhook's order gives only each refund's
  `total`, tax and shipping included: the line-item part is then estimated as the order's own
  line-item share of its grand total (`_line_item_share`: exact for a full refund, and for a
  refund of items when tax is proportional; a refund of shipping alone is over-counted). No
  refund date either: the refund is dated by the `date_modified_gmt` of the order version that
  carries it, so a later version of the order re-dates it (the latest version wins).
- WooCommerce has no test flag: test is always false.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

from ingest.events import MONEY_SCALE, Action, CanonicalEvent, OrderLine
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
    require_mapping,
    topic_mismatch,
)
from ingest.quarantine import UNKNOWN_TOPIC

SIGNATURE_HEADER = "x-wc-webhook-signature"
TOPIC_HEADER = "x-wc-webhook-topic"
DELIVERY_HEADER = "x-wc-webhook-delivery-id"

CHECKOUT_STATUSES = frozenset({"pending", "failed", "checkout-draft"})
ORDER_STATUSES = frozenset({"processing", "on-hold", "completed", "refunded"})
CANCELLED_STATUS = "cancelled"
TRASH_STATUS = "trash"

_MONEY_STEP = Decimal(1).scaleb(-MONEY_SCALE)
_PING_BODY = re.compile(rb"webhook_id=[0-9]{1,20}")
_FORM = "application/x-www-form-urlencoded"
_GMT_FIELD = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?")

_ACTIONS: dict[str, Action] = {
    "order.created": "create",
    "order.updated": "update",
    "order.restored": "update",
}


def parse_gmt(obj: Mapping[str, Any], field: str, *, required: bool = True) -> datetime | None:
    """A WooCommerce `*_gmt` time: ISO 8601 without an offset, in UTC."""
    value = obj.get(field)
    if value is None or value == "":
        if required:
            raise UnusableDelivery(f"field '{field}' is missing")
        return None
    if not isinstance(value, str):
        raise UnusableDelivery(f"field '{field}' must be an ISO 8601 string")
    text = value.strip()
    if _GMT_FIELD.fullmatch(text):
        return datetime.fromisoformat(text).replace(tzinfo=UTC)
    try:  # tolerate an explicit offset
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UnusableDelivery(f"field '{field}' is not an ISO 8601 time: {text[:40]!r}") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _required_id(obj: Mapping[str, Any], field: str, where: str = "") -> str:
    """A required id; `where` is the path of a nested object, named in the reason."""
    path = f"{where}.{field}" if where else field
    try:
        value = get_id(obj, field)
    except UnusableDelivery as exc:
        raise UnusableDelivery(str(exc).replace(f"'{field}'", f"'{path}'", 1)) from None
    if value is None:  # pragma: no cover - get_id(required=True) never returns None
        raise UnusableDelivery(f"field '{path}' is missing")
    return value


def _items_total(items: Any, where: str) -> Decimal:
    """The sum of `total` (after discounts, before tax) of a list of line items."""
    if not isinstance(items, list):
        raise UnusableDelivery(f"field '{where}' must be a list")
    total = Decimal(0)
    for index, item in enumerate(items):
        item = require_mapping(item, f"{where}[{index}]")
        if item.get("total") is None:
            raise UnusableDelivery(f"field '{where}[{index}].total' is missing")
        total += parse_money(item["total"], f"{where}[{index}].total")
    return total


def _line_item_share(order: Mapping[str, Any], refunded: Decimal) -> Decimal:
    """The line-item part of a refund of `refunded` (tax and shipping included), estimated.

    A webhook's order lists each refund's total only. The line-item part is estimated as the
    order's own line-item share of its total (line items after discounts, over the grand total
    with tax and shipping), never more than the line items: exact for a full refund and for a
    refund of items when tax is proportional; a refund of shipping alone is over-counted.
    """
    items = _items_total(order.get("line_items"), "line_items")
    raw_total = order.get("total")
    grand = Decimal(0) if raw_total in (None, "") else parse_money(raw_total, "total")
    if grand <= 0 or items <= 0:
        return min(refunded, max(items, Decimal(0)))
    return min(refunded * items / grand, items).quantize(_MONEY_STEP)


def _lines(order: Mapping[str, Any]) -> tuple[OrderLine, ...] | None:
    """`line_items` as canonical lines (see the module docstring); None when unusable."""
    items = order.get("line_items")
    if not isinstance(items, list):
        return None
    lines = []
    try:
        for index, item in enumerate(items):
            where = f"line_items[{index}]"
            if not isinstance(item, Mapping) or item.get("total") is None:
                return None
            quantity = item.get("quantity")
            if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
                return None
            subtotal = parse_money(item.get("subtotal"), f"{where}.subtotal")
            total = parse_money(item["total"], f"{where}.total")
            lines.append(
                {
                    "product_id": _nonzero_id(item, "product_id"),
                    "variant_id": _nonzero_id(item, "variation_id"),
                    "sku": optional_text(item.get("sku")),
                    "title": optional_text(html.unescape(str(item.get("name") or ""))),
                    "quantity": quantity,
                    "unit_price": (subtotal / quantity).quantize(Decimal("0.0001"))
                    if quantity
                    else subtotal,
                    "discount": subtotal - total,
                }
            )
    except UnusableDelivery:
        return None
    return build_lines(lines)


def _nonzero_id(item: Mapping[str, Any], field: str) -> str | None:
    """An id WooCommerce sends as 0 when there is none."""
    value = get_id(item, field, required=False)
    return None if value in (None, "0") else value


class WooCommerce:
    name: ClassVar[str] = "woocommerce"
    topics: ClassVar[frozenset[str]] = frozenset(
        {"order.created", "order.updated", "order.deleted", "order.restored"}
    )
    kept_headers: ClassVar[tuple[str, ...]] = (
        TOPIC_HEADER,
        "x-wc-webhook-resource",
        "x-wc-webhook-event",
        "x-wc-webhook-id",
        DELIVERY_HEADER,
        "x-wc-webhook-source",
    )
    single_headers: ClassVar[tuple[str, ...]] = (SIGNATURE_HEADER, TOPIC_HEADER, DELIVERY_HEADER)

    def verify(self, body: bytes, headers: Headers, secrets: Sequence[str], now: datetime) -> None:
        given = headers.get(SIGNATURE_HEADER, "").strip()
        if not given:
            raise SignatureError("missing X-WC-Webhook-Signature header")
        if not any_secret_matches(
            lambda secret: b64_hmac_sha256(secret.encode("utf-8"), body), given, secrets
        ):
            raise SignatureError("X-WC-Webhook-Signature does not match the body for any secret")

    def is_ping(self, body: bytes, headers: Headers) -> bool:
        media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        return media in ("", _FORM) and _PING_BODY.fullmatch(body) is not None

    def delivery_info(self, body: bytes, headers: Headers, payload: Any) -> DeliveryInfo:
        topic = headers.get(TOPIC_HEADER, "").strip()
        delivery_id = ""
        if isinstance(payload, Mapping):
            order_id = payload.get("id")
            modified = payload.get("date_modified_gmt") or payload.get("date_modified")
            if (
                isinstance(order_id, int | str)
                and not isinstance(order_id, bool)
                and str(order_id)
                and isinstance(modified, str)
                and modified
            ):
                delivery_id = f"order:{order_id}:{modified}:{topic}"
        delivery_id = delivery_id or headers.get(DELIVERY_HEADER, "").strip() or body_digest(body)
        return DeliveryInfo(delivery_id=delivery_id[:256], topic=topic)

    def normalize(self, topic: str, payload: Any, headers: Headers) -> list[CanonicalEvent]:
        if not topic:
            raise UnusableDelivery("missing X-WC-Webhook-Topic header")
        if topic not in self.topics:
            raise UnusableDelivery(f"{UNKNOWN_TOPIC} '{topic[:80]}'")
        order = require_mapping(payload)
        order_id = _required_id(order, "id")
        self._check_topic(topic, order)
        events = self._events(topic, order, order_id)
        if topic == "order.restored":  # out of the trash: undoes the deletions before it
            restored_at = parse_gmt(order, "date_modified_gmt")
            marker = build_event(
                kind="order", action="restore", entity_id=order_id, updated_at=restored_at
            )
            return [marker, *events]
        return events

    def _events(self, topic: str, order: Mapping[str, Any], order_id: str) -> list[CanonicalEvent]:
        """The events of the order as this body shows it (the topic only names the action)."""
        if topic == "order.deleted":
            return [build_event(kind="order", action="delete", entity_id=order_id, deleted=True)]
        status = order.get("status")
        if not isinstance(status, str) or not status:
            raise UnusableDelivery("field 'status' is missing")
        if topic == "order.restored" and status == TRASH_STATUS:
            raise topic_mismatch(topic, "an order out of the trash", "an order in the trash")
        created = parse_gmt(order, "date_created_gmt")
        modified = parse_gmt(order, "date_modified_gmt")
        currency = order.get("currency")
        action = _ACTIONS[topic]
        if status in CHECKOUT_STATUSES:
            try:
                value: tuple[Decimal | None, Decimal | None] = self._money(order)
            except UnusableDelivery:  # the value is informational: never a reason to quarantine
                value = (None, None)
            return [
                build_event(
                    kind="checkout",
                    action=action,
                    entity_id=order_id,
                    created_at=created,
                    updated_at=modified,
                    checkout_token=order_id,
                    currency=currency,
                    gross_sales=value[0],
                    discounts=value[1],
                )
            ]
        if status == TRASH_STATUS:
            return [
                build_event(
                    kind="order",
                    action="delete",
                    entity_id=order_id,
                    created_at=created,
                    updated_at=modified,
                    order_id=order_id,
                    deleted=True,
                )
            ]
        if status not in ORDER_STATUSES and status != CANCELLED_STATUS:
            raise UnusableDelivery(f"unknown order status '{status[:40]}'")
        if not isinstance(currency, str) or not currency:
            raise UnusableDelivery("field 'currency' is missing")
        cancelled = status == CANCELLED_STATUS
        paid = parse_gmt(order, "date_paid_gmt", required=False) is not None
        gross, discounts = self._money(order)
        events = [
            build_event(
                kind="order",
                action="cancel" if cancelled else action,
                entity_id=order_id,
                created_at=created,
                updated_at=modified,
                checkout_token=order_id if (paid or not cancelled) else None,
                order_id=order_id,
                currency=currency,
                gross_sales=gross,
                discounts=discounts,
                name=f"#{number}" if (number := optional_text(order.get("number"))) else None,
                lines=_lines(order),
                cancelled=cancelled,
            )
        ]
        events.extend(self._refunds(order, order_id, currency, modified))
        return events

    @staticmethod
    def _check_topic(topic: str, order: Mapping[str, Any]) -> None:
        """WooCommerce signs the body only: the topic header is believed where the body agrees
        (`order.deleted` sends `{"id": ...}` alone, every other topic the whole order)."""
        deletion = is_deletion_body(order)
        if topic == "order.deleted" and not deletion:
            raise topic_mismatch(topic, 'a deletion notice ({"id": ...} alone)', "an order")
        if topic != "order.deleted" and deletion:
            raise topic_mismatch(topic, "an order", "a deletion notice")

    @staticmethod
    def _money(order: Mapping[str, Any]) -> tuple[Decimal, Decimal]:
        items = order.get("line_items")
        if not isinstance(items, list):
            raise UnusableDelivery("field 'line_items' must be a list")
        gross = Decimal(0)
        for index, item in enumerate(items):
            where = f"line_items[{index}]"
            item = require_mapping(item, where)
            if item.get("subtotal") is None:
                raise UnusableDelivery(f"field '{where}.subtotal' is missing")
            gross += parse_money(item["subtotal"], f"{where}.subtotal")
        raw_discount = order.get("discount_total")
        discounts = (
            Decimal(0)
            if raw_discount in (None, "")
            else parse_money(raw_discount, "discount_total")
        )
        return gross, discounts

    @staticmethod
    def _refunds(
        order: Mapping[str, Any], order_id: str, currency: str, modified: datetime | None
    ) -> list[CanonicalEvent]:
        refunds = order.get("refunds")
        if refunds is None:
            return []
        if not isinstance(refunds, list):
            raise UnusableDelivery("field 'refunds' must be a list")
        events = []
        for index, refund in enumerate(refunds):
            where = f"refunds[{index}]"
            refund = require_mapping(refund, where)
            if refund.get("total") is None:
                raise UnusableDelivery(f"field '{where}.total' is missing")
            items = refund.get("line_items")
            if items is not None:  # the refund as WooCommerce's refunds API gives it
                amount = abs(_items_total(items, f"{where}.line_items"))
            else:
                amount = _line_item_share(
                    order, abs(parse_money(refund["total"], f"{where}.total"))
                )
            events.append(
                build_event(
                    kind="refund",
                    action="refund",
                    entity_id=_required_id(refund, "id", where),
                    created_at=modified,
                    updated_at=modified,
                    order_id=order_id,
                    currency=currency,
                    refund_amount=amount,
                )
            )
        return events

    def sign(
        self, body: bytes, secret: str, *, topic: str, delivery_id: str, timestamp: int
    ) -> dict[str, str]:
        resource, _, event = topic.partition(".")
        return {
            "Content-Type": "application/json",
            "User-Agent": "WooCommerce/9.0.0 Hookshot (WordPress/6.5)",
            "X-WC-Webhook-Source": "https://shop.example.com/",
            "X-WC-Webhook-Topic": topic,
            "X-WC-Webhook-Resource": resource,
            "X-WC-Webhook-Event": event,
            "X-WC-Webhook-Signature": b64_hmac_sha256(secret.encode("utf-8"), body),
            "X-WC-Webhook-ID": "1",
            "X-WC-Webhook-Delivery-ID": delivery_id,
        }
