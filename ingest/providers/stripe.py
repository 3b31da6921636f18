"""Stripe Checkout: `Stripe-Signature: t=<ts>,v1=<hex>[,v1=<hex>...][,v0=<hex>]`.

Signature: lowercase-hex HMAC-SHA256 of `"{t}." + raw body`, keyed with the whole endpoint
secret string (`whsec_...`) as UTF-8 bytes; unlike Standard Webhooks nothing is base64-decoded.
Any `v1` entry may match (Stripe lists two while a secret is being rolled); `v0` is ignored.
A `t` further than the tolerance from the service clock, in either direction, is rejected.

Delivery id: the event's `id` (`evt_...`, the same on retries). Topic: the event's `type`.

Mapping (amounts are integers in the currency's minor units and are converted exactly with the
currency's exponent: 0 for Stripe's zero-decimal currencies such as JPY and KRW, 3 for BHD, JOD,
KWD, OMR and TND, 2 for every other currency, including ISK, HUF and TWD, which Stripe still
writes with two decimals; currency codes are upper-cased):

- `checkout.session.completed` and `checkout.session.async_payment_succeeded`: a checkout event
  (entity = session id, completed) and, unless the session is in `setup` mode (no payment), an
  order event. The order's entity id is the session's `payment_intent` (`pi_...`), because that
  is the only link a refund's charge carries; sessions without one (subscription mode,
  zero-amount sessions) use the session id, and refunds cannot be linked to those.
  `checkout_token` = session id. gross_sales = `amount_subtotal`, discounts =
  `total_details.amount_discount`. Old API versions (e.g. 2019-05-16) have no `amount_subtotal`:
  gross_sales is then the sum of `display_items[].amount x quantity` and discounts are 0 (those
  versions had no discount total). Orders are dated by the session's `created` when present (so
  a later async payment does not move the order), else by the event's `created`.
- Line items: a session carries them only when the sender expanded `line_items` (the webhook
  itself never does); then each `line_items.data[]` entry becomes a line: product =
  `price.product`, variant = `price.id`, title = `description`, unit price = `amount_subtotal` /
  `quantity`, discount = `amount_discount`. Without them the order's lines are not known.
  Checkout events carry the session's value (`amount_subtotal` and the discount), expired ones
  included.
- `checkout.session.async_payment_failed`: the same events, with the order cancelled (a delayed
  payment method such as a bank debit failed after the customer completed the checkout; the
  checkout stays completed).
- `checkout.session.expired`: the checkout, abandoned.
- `charge.refunded`: one refund event per refund in `charge.refunds.data` (entity = `re_...`,
  amount = refund `amount`, dated by the refund's `created`; failed or canceled refunds carry 0
  so a later event can take back an earlier pending one). API versions from 2022-11-15 no longer
  include that list; then one refund event per charge (entity = charge id) carries the charge's
  cumulative `amount_refunded`, dated by the event. `order_id` = the charge's `payment_intent`.
  Stripe refunds are amounts of money returned, tax and shipping included.
- test = not `livemode`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

from ingest.events import CanonicalEvent, OrderLine
from ingest.providers._standard_webhooks import check_timestamp, is_unix_seconds
from ingest.providers.base import (
    DeliveryInfo,
    Headers,
    SignatureError,
    UnusableDelivery,
    any_secret_matches,
    body_digest,
    build_event,
    build_lines,
    get_id,
    optional_text,
    require_mapping,
)
from ingest.quarantine import UNKNOWN_TOPIC

SIGNATURE_HEADER = "stripe-signature"

COMPLETED_TOPICS = frozenset(
    {"checkout.session.completed", "checkout.session.async_payment_succeeded"}
)
EXPIRED_TOPIC = "checkout.session.expired"
FAILED_TOPIC = "checkout.session.async_payment_failed"
REFUND_TOPIC = "charge.refunded"

#: Stripe's zero-decimal currencies (amounts are whole units).
ZERO_DECIMAL = frozenset(
    {
        "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA",
        "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF",
    }
)  # fmt: skip
#: Stripe's three-decimal currencies.
THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})

_MAX_MINOR = 10**18


def currency_exponent(code: str) -> int:
    """How many minor-unit digits Stripe uses for `code` (upper case)."""
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return 2


def minor_to_decimal(amount: int, code: str) -> Decimal:
    """An integer amount in minor units as an exact decimal in major units."""
    return Decimal(amount).scaleb(-currency_exponent(code))


def _lines(session: Mapping[str, Any], currency: str | None) -> tuple[OrderLine, ...] | None:
    """An expanded `line_items` list as canonical lines (see the module docstring)."""
    listed = session.get("line_items")
    if currency is None or not isinstance(listed, Mapping) or listed.get("has_more"):
        return None
    items = listed.get("data")
    if not isinstance(items, list):
        return None
    lines = []
    try:
        for index, item in enumerate(items):
            where = f"data.object.line_items.data[{index}]."
            if not isinstance(item, Mapping):
                return None
            quantity = _int(item, "quantity", where)
            subtotal = minor_to_decimal(_int(item, "amount_subtotal", where), currency)
            price = item.get("price")
            price = price if isinstance(price, Mapping) else {}
            product = price.get("product")
            if isinstance(product, Mapping):  # expanded too
                product = product.get("id")
            lines.append(
                {
                    "product_id": optional_text(product),
                    "variant_id": optional_text(price.get("id")),
                    "title": optional_text(item.get("description")),
                    "quantity": quantity,
                    "unit_price": (subtotal / quantity).quantize(Decimal("0.0001"))
                    if quantity
                    else subtotal,
                    "discount": minor_to_decimal(
                        _optional_int(item, "amount_discount", where) or 0, currency
                    ),
                }
            )
    except UnusableDelivery:
        return None
    return build_lines(lines)


def _int(obj: Mapping[str, Any], field: str, where: str) -> int:
    value = obj.get(field)
    if isinstance(value, bool) or not isinstance(value, int):
        raise UnusableDelivery(f"field '{where}{field}' must be an integer")
    if abs(value) > _MAX_MINOR:
        raise UnusableDelivery(f"field '{where}{field}' is out of range")
    return value


def _optional_int(obj: Mapping[str, Any], field: str, where: str) -> int | None:
    return None if obj.get(field) is None else _int(obj, field, where)


def _time(obj: Mapping[str, Any], field: str, where: str) -> datetime:
    return datetime.fromtimestamp(_int(obj, field, where), UTC)


def _currency(obj: Mapping[str, Any], where: str) -> str:
    value = obj.get("currency")
    if not isinstance(value, str) or not value:
        raise UnusableDelivery(f"field '{where}currency' is missing")
    return value.upper()


def _livemode(event: Mapping[str, Any], obj: Mapping[str, Any]) -> bool:
    value = obj.get("livemode", event.get("livemode"))
    if not isinstance(value, bool):
        raise UnusableDelivery("field 'livemode' must be true or false")
    return value


def _expected(secret: str, timestamp: str, body: bytes) -> str:
    message = timestamp.encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


#: The most `Stripe-Signature` items read; a real header has a `t`, one or two `v1` and a `v0`.
_MAX_ITEMS = 32


def _parse_header(value: str) -> tuple[str | None, list[str]]:
    """The `t` and every `v1` among the first 32 items of a Stripe-Signature header.

    Two `t` items are ambiguous (libraries differ on which one they check) and are refused."""
    timestamps: list[str] = []
    signatures: list[str] = []
    for item in value.split(",")[:_MAX_ITEMS]:
        key, _, val = item.strip().partition("=")
        if key == "t":
            timestamps.append(val.strip())
        elif key == "v1":
            signatures.append(val.strip())
    if len(timestamps) > 1:
        raise SignatureError("Stripe-Signature has more than one t= timestamp: ambiguous")
    return (timestamps[0] if timestamps else None), signatures


class Stripe:
    name: ClassVar[str] = "stripe"
    topics: ClassVar[frozenset[str]] = COMPLETED_TOPICS | {
        EXPIRED_TOPIC,
        FAILED_TOPIC,
        REFUND_TOPIC,
    }
    kept_headers: ClassVar[tuple[str, ...]] = ("user-agent",)
    single_headers: ClassVar[tuple[str, ...]] = (SIGNATURE_HEADER,)

    def __init__(self, tolerance_seconds: int = 300) -> None:
        self.tolerance_seconds = tolerance_seconds

    def verify(self, body: bytes, headers: Headers, secrets: Sequence[str], now: datetime) -> None:
        header = headers.get(SIGNATURE_HEADER, "").strip()
        if not header:
            raise SignatureError("missing Stripe-Signature header")
        timestamp, given = _parse_header(header)
        if not timestamp or not is_unix_seconds(timestamp):
            raise SignatureError(
                "Stripe-Signature has no valid t= timestamp (Unix seconds as a plain decimal "
                "integer: no sign, no leading zero)"
            )
        if not given:
            raise SignatureError("Stripe-Signature has no v1 signature")
        matched = False
        for candidate in given:  # every candidate is checked: no early exit
            if any_secret_matches(
                lambda secret: _expected(secret, timestamp, body), candidate, secrets
            ):
                matched = True
        if not matched:
            raise SignatureError("Stripe-Signature does not match the body for any secret")
        check_timestamp(timestamp, now, self.tolerance_seconds)

    def is_ping(self, body: bytes, headers: Headers) -> bool:
        return False

    def delivery_info(self, body: bytes, headers: Headers, payload: Any) -> DeliveryInfo:
        delivery_id = topic = ""
        if isinstance(payload, Mapping):
            if isinstance(payload.get("id"), str):
                delivery_id = payload["id"].strip()
            if isinstance(payload.get("type"), str):
                topic = payload["type"]
        return DeliveryInfo(delivery_id=(delivery_id or body_digest(body))[:256], topic=topic)

    def normalize(self, topic: str, payload: Any, headers: Headers) -> list[CanonicalEvent]:
        if not topic:
            raise UnusableDelivery("field 'type' is missing")
        if topic not in self.topics:
            raise UnusableDelivery(f"{UNKNOWN_TOPIC} '{topic[:80]}'")
        event = require_mapping(payload)
        data = require_mapping(event.get("data"), "field 'data'")
        obj = require_mapping(data.get("object"), "field 'data.object'")
        event_time = _time(event, "created", "")
        if topic == REFUND_TOPIC:
            return self._refunds(event, obj, event_time)
        return self._session(topic, event, obj, event_time)

    def _session(
        self, topic: str, event: Mapping[str, Any], session: Mapping[str, Any], event_time: datetime
    ) -> list[CanonicalEvent]:
        session_id = get_id(session, "id")
        created = (
            _time(session, "created", "data.object.")
            if session.get("created") is not None
            else event_time
        )
        test = not _livemode(event, session)
        if topic == EXPIRED_TOPIC:
            currency = session.get("currency")
            try:  # the value is informational: never a reason to quarantine
                value, discount, _ = self._amounts(session)
            except UnusableDelivery:
                value = discount = None
            return [
                build_event(
                    kind="checkout",
                    action="expire",
                    entity_id=session_id,
                    created_at=created,
                    updated_at=event_time,
                    checkout_token=session_id,
                    currency=currency.upper() if isinstance(currency, str) else None,
                    gross_sales=value,
                    discounts=discount,
                    test=test,
                    abandoned=True,
                )
            ]
        gross, discounts, currency = self._amounts(session)
        checkout = build_event(
            kind="checkout",
            action="complete",
            entity_id=session_id,
            created_at=created,
            updated_at=event_time,
            checkout_token=session_id,
            currency=currency,
            gross_sales=gross,
            discounts=discounts,
            test=test,
            completed=True,
        )
        if session.get("mode") == "setup":
            return [checkout]
        order_id = get_id(session, "payment_intent", required=False) or session_id
        failed = topic == FAILED_TOPIC
        paid = session.get("payment_status") in ("paid", None)
        order = build_event(
            kind="order",
            action="cancel" if failed else "paid" if paid else "create",
            entity_id=order_id,
            created_at=created,
            updated_at=event_time,
            checkout_token=session_id,
            order_id=order_id,
            currency=currency,
            gross_sales=gross,
            discounts=discounts,
            lines=_lines(session, currency),
            test=test,
            cancelled=failed,
        )
        return [checkout, order]

    @staticmethod
    def _amounts(session: Mapping[str, Any]) -> tuple[Decimal | None, Decimal | None, str | None]:
        """gross_sales, discounts and currency of a session (None for a setup session)."""
        where = "data.object."
        if "amount_subtotal" in session:
            subtotal = _optional_int(session, "amount_subtotal", where)
            if subtotal is None:
                if session.get("mode") == "setup":
                    return None, None, None
                raise UnusableDelivery(f"field '{where}amount_subtotal' is missing")
            currency = _currency(session, where)
            details = session.get("total_details")
            discount = 0
            if details is not None:
                details = require_mapping(details, f"field '{where}total_details'")
                discount = _optional_int(details, "amount_discount", where + "total_details.") or 0
            return (
                minor_to_decimal(subtotal, currency),
                minor_to_decimal(discount, currency),
                currency,
            )
        items = session.get("display_items")
        if session.get("mode") == "setup" and not items:
            return None, None, None
        if not isinstance(items, list) or not items:
            raise UnusableDelivery(f"field '{where}amount_subtotal' is missing")
        total = 0
        codes: set[str] = set()
        for index, item in enumerate(items):
            item_where = f"{where}display_items[{index}]."
            item = require_mapping(item, f"field '{item_where[:-1]}'")
            total += _int(item, "amount", item_where) * _int(item, "quantity", item_where)
            codes.add(_currency(item, item_where))
        if len(codes) != 1:
            raise UnusableDelivery(f"display_items mix currencies: {', '.join(sorted(codes))}")
        currency = codes.pop()
        return minor_to_decimal(total, currency), Decimal(0), currency

    def _refunds(
        self, event: Mapping[str, Any], charge: Mapping[str, Any], event_time: datetime
    ) -> list[CanonicalEvent]:
        charge_id = get_id(charge, "id")
        currency = _currency(charge, "data.object.")
        test = not _livemode(event, charge)
        order_id = get_id(charge, "payment_intent", required=False)
        listed = charge.get("refunds")
        refunds = listed.get("data") if isinstance(listed, Mapping) else None
        complete = (
            isinstance(listed, Mapping) and isinstance(refunds, list) and not listed.get("has_more")
        )
        if not complete or not isinstance(refunds, list):
            amount = _int(charge, "amount_refunded", "data.object.")
            return [
                build_event(
                    kind="refund",
                    action="refund",
                    entity_id=charge_id,
                    created_at=event_time,
                    updated_at=event_time,
                    order_id=order_id,
                    currency=currency,
                    refund_amount=minor_to_decimal(amount, currency),
                    test=test,
                )
            ]
        events = []
        for index, refund in enumerate(refunds):
            where = f"data.object.refunds.data[{index}]."
            refund = require_mapping(refund, f"field '{where[:-1]}'")
            amount = _int(refund, "amount", where)
            if refund.get("status") in ("failed", "canceled"):
                amount = 0
            events.append(
                build_event(
                    kind="refund",
                    action="refund",
                    entity_id=get_id(refund, "id"),
                    created_at=_time(refund, "created", where),
                    updated_at=event_time,
                    order_id=order_id,
                    currency=currency,
                    refund_amount=minor_to_decimal(amount, currency),
                    test=test,
                )
            )
        return events

    def sign(
        self, body: bytes, secret: str, *, topic: str, delivery_id: str, timestamp: int
    ) -> dict[str, str]:
        """The Stripe-Signature Stripe would send; topic and id travel in the body itself."""
        stamp = str(timestamp)
        return {
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": f"t={stamp},v1={_expected(secret, stamp, body)}",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        }
