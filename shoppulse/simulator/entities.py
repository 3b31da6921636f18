"""The simulated stores' entities (carts, checkouts, orders) and the sample payloads their bodies
are filled into."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from importlib import resources
from typing import Any

import orjson

from shoppulse.simulator.model import (
    DeliveryKind,
)
from shoppulse.simulator.money import (
    ZERO,
    from_usd,
    round_money,
)

# ----------------------------------------------------------------------------- templates

_TEMPLATE_NAMES = ("carts_create", "checkouts_create", "orders_create", "refunds_create")
_ITEM_KEYS = {
    "carts_create": "line_items",
    "checkouts_create": "line_items",
    "orders_create": "line_items",
    "refunds_create": "refund_line_items",
}


def _load_templates() -> tuple[dict[str, bytes], dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Template bodies (serialized, line items removed), their first line item, the catalog."""
    folder = resources.files("shoppulse") / "simulator_templates"
    bodies: dict[str, bytes] = {}
    items: dict[str, dict[str, Any]] = {}
    for name in _TEMPLATE_NAMES:
        body = json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))
        items[name] = body[_ITEM_KEYS[name]][0]
        body[_ITEM_KEYS[name]] = []
        bodies[name] = orjson.dumps(body)
    catalog = json.loads((folder / "catalog.json").read_text(encoding="utf-8"))
    return bodies, items, list(catalog["products"])


_BODIES, _ITEMS, CATALOG = _load_templates()


def fresh_body(name: str) -> dict[str, Any]:
    """A new, deep copy of a template body (its line-item list empty)."""
    body: dict[str, Any] = orjson.loads(_BODIES[name])
    return body


def fresh_item(name: str) -> dict[str, Any]:
    """A shallow copy of a template line item: callers replace, never mutate, nested values."""
    return dict(_ITEMS[name])


# ----------------------------------------------------------------------------- entity state


@dataclass(frozen=True, slots=True)
class Store:
    """A simulated store: its source id, shop domain, UTC offset, tax rate and the shop id in
    its URLs."""

    source: str
    domain: str
    offset: timezone
    tax_rate: Decimal
    key: str


#: What the simulated stores are like, picked by seed: UTC offsets, tax rates, names, codes.
UTC_OFFSET_HOURS = (-5, 1, -8, 5.5, 0, 10, -3, 9)
TAX_RATES = ("0.06", "0.19", "0.0875", "0.20", "0.10", "0.07", "0.21", "0.08")
FIRST_NAMES = ("Alex", "Sam", "Maria", "Jon", "Aiko", "Lena", "Omar", "Priya", "Chen", "Noah")
LAST_NAMES = ("Smith", "Garcia", "Muller", "Tanaka", "Okafor", "Rossi", "Nguyen", "Silva", "Kim")
DISCOUNT_CODES = (
    ("WELCOME10", "percentage", "10"),
    ("SPRING15", "percentage", "15"),
    ("VIP20", "percentage", "20"),
    ("TAKE5", "fixed_amount", "5"),
    ("SAVE20", "fixed_amount", "20"),
)


@dataclass(slots=True)
class Line:
    """One line of a cart, checkout or order: a catalog product, its quantity and price."""

    product: dict[str, Any]
    quantity: int
    price: Decimal
    line_id: int
    key: str

    @property
    def total(self) -> Decimal:
        return self.price * self.quantity


@dataclass(frozen=True, slots=True)
class Discount:
    """A discount code applied to a checkout or order."""

    code: str
    kind: str
    value: Decimal  #: percent, or an amount in the basket's currency


@dataclass(frozen=True, slots=True)
class Totals:
    """An order's amounts, consistent with each other (see `order_totals`)."""

    gross: Decimal
    allocations: tuple[Decimal, ...]
    discounts: Decimal
    subtotal: Decimal
    shipping: Decimal
    tax: Decimal
    total: Decimal
    weight: int


def order_totals(
    lines: list[Line], discount: Discount | None, currency: str, tax: Decimal
) -> Totals:
    """Consistent order arithmetic: gross = sum(price x qty); discounts = sum of allocations."""
    zero = round_money(ZERO, currency)
    gross = sum((line.total for line in lines), zero)
    allocations: list[Decimal] = [zero] * len(lines)
    if discount is not None and discount.kind == "percentage":
        allocations = [round_money(line.total * discount.value / 100, currency) for line in lines]
    elif discount is not None and gross >= 4 * discount.value:  # the code's minimum purchase
        amount = discount.value
        for n, line in enumerate(lines[:-1]):
            allocations[n] = round_money(amount * line.total / gross, currency)
        allocations[-1] = amount - sum(allocations[:-1], zero)
    discounts = sum(allocations, zero)
    subtotal = gross - discounts
    shipping = ZERO if subtotal >= from_usd("100", currency) else from_usd("7.50", currency)
    tax_amount = round_money(subtotal * tax, currency)
    weight = sum(int(line.product["grams"]) * line.quantity for line in lines)
    return Totals(
        gross,
        tuple(allocations),
        discounts,
        subtotal,
        shipping,
        tax_amount,
        subtotal + shipping + tax_amount,
        weight,
    )


@dataclass(slots=True)
class Cart:
    """A shopper's cart."""

    token: str
    lines: list[Line]
    created: datetime | None = None
    updated: datetime | None = None


@dataclass(slots=True)
class Checkout:
    """A checkout started from a cart."""

    id: int
    token: str
    cart: Cart
    discount: Discount | None
    email: str | None = None
    created: datetime | None = None
    updated: datetime | None = None


@dataclass(slots=True)
class Order:
    """An order, with what has happened to it so far (payment, fulfilment, refunds)."""

    id: int
    number: int
    token: str
    currency: str
    lines: list[Line]
    totals: Totals
    discount: Discount | None
    customer: tuple[int, str, str, str]
    test: bool
    cart: Cart | None
    checkout: Checkout | None
    financial_status: str
    fulfillment_status: str | None = None
    cancelled_at: datetime | None = None
    created: datetime | None = None
    updated: datetime | None = None
    body: bytes | None = None
    returned: Decimal = ZERO
    refund_count: int = 0


@dataclass(frozen=True, slots=True)
class Resend:
    """A delivery to send again later: a retry or a stale version."""

    source: str
    topic: str
    delivery_id: str
    body: bytes
    kind: DeliveryKind


#: What the generator has scheduled: a shopper's next step, or a delivery to resend.
Due = Iterator[int] | Resend
