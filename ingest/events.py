"""The canonical event: the one shape every provider's payload is normalized into.

Every delivery that passes verification becomes zero or more canonical events. The metrics
engine folds nothing else, so this module is the contract between ingest and metrics. It is also
the body a Standard Webhooks sender posts (see docs/standard-webhooks.md for its JSON Schema).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

EntityKind = Literal["cart", "checkout", "order", "refund"]
ENTITY_KINDS: tuple[EntityKind, ...] = ("cart", "checkout", "order", "refund")

#: What happened to the entity. Metrics use the state fields (test, cancelled, deleted,
#: abandoned, completed), never the action; the action is kept for people reading the data.
Action = Literal[
    "create",
    "update",
    "delete",
    "cancel",
    "paid",
    "abandon",
    "convert",
    "complete",
    "expire",
    "refund",
]

#: Money is stored with four decimal places: enough for every ISO 4217 currency (at most three
#: minor digits) and exact. Larger magnitudes than this are rejected as unusable.
MONEY_SCALE = 4
MONEY_MAX = Decimal("99999999999999.9999")

Money = Annotated[Decimal, Field(ge=-MONEY_MAX, le=MONEY_MAX, allow_inf_nan=False)]


class OrderLine(BaseModel):
    """One line item of an order: a product, how many, at what price."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_max_length=512)

    product_id: str | None = Field(default=None, description="The platform's product id.")
    variant_id: str | None = Field(default=None, description="The product variant's id.")
    sku: str | None = Field(default=None, description="The stock keeping unit.")
    title: str | None = Field(default=None, description="The product's title as sold.")
    quantity: int = Field(ge=0, le=1_000_000_000, description="Units sold on this line.")
    unit_price: Money = Field(
        description="Price of one unit before discounts, in the order's currency; an order's "
        "gross_sales is the sum of its lines' unit_price x quantity."
    )
    discount: Money = Field(
        default=Decimal(0),
        description="Discounts allocated to this line (part of the order's discounts).",
    )

    @field_validator("unit_price", "discount")
    @classmethod
    def _scale(cls, value: Decimal) -> Decimal:
        return _money_scale(value)


class CanonicalEvent(BaseModel):
    """One fact about one cart, checkout, order or refund, as ShopPulse understands it."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_max_length=512)

    kind: EntityKind = Field(description="Which entity the event is about.")
    action: Action = Field(description="What happened (informational; state fields decide).")
    entity_id: str = Field(
        min_length=1,
        description="The entity's id within its source: cart token, checkout token or session "
        "id, order id, refund id.",
    )
    created_at: datetime | None = Field(
        default=None,
        description="The entity's own creation time (UTC). Orders: processed_at when present. "
        "Refunds: when the refund was created (returns are dated by it).",
    )
    updated_at: datetime | None = Field(
        default=None,
        description="The entity version's time (UTC). The greatest updated_at wins; ties go to "
        "the later delivery.",
    )
    cart_token: str | None = Field(default=None, description="The cart this entity belongs to.")
    checkout_token: str | None = Field(
        default=None, description="The checkout this entity belongs to."
    )
    order_id: str | None = Field(
        default=None, description="The order this entity belongs to (refunds, converted carts)."
    )
    currency: str | None = Field(
        default=None,
        pattern=r"^[A-Z]{3}$",
        description="ISO 4217 code of the shop currency the money fields are in.",
    )
    gross_sales: Money | None = Field(
        default=None,
        description="Orders: line-item price x quantity before discounts. Checkouts: the same "
        "for the checkout's items (its value).",
    )
    discounts: Money | None = Field(
        default=None, description="Orders (and checkouts): order-level discounts."
    )
    refund_amount: Money | None = Field(
        default=None, description="Refunds: refunded line-item amount, before tax."
    )
    name: str | None = Field(
        default=None,
        description="Orders: the name the shop shows for the order, such as Shopify's #1001.",
    )
    lines: tuple[OrderLine, ...] | None = Field(
        default=None,
        description="Orders: the line items, when the platform sends them (null: not known).",
    )
    test: bool = Field(default=False, description="A test order or test-mode event.")
    cancelled: bool = Field(default=False, description="Orders: this version is cancelled.")
    deleted: bool = Field(
        default=False, description="The entity was deleted (sticky: a deletion is never undone)."
    )
    abandoned: bool = Field(
        default=False,
        description="The platform declared this cart or checkout abandoned (sticky).",
    )
    completed: bool = Field(
        default=False,
        description="Checkouts: the platform declared the checkout completed (sticky).",
    )

    @field_validator("created_at", "updated_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamp must carry a UTC offset")
        return value.astimezone(UTC)

    @field_validator("gross_sales", "discounts", "refund_amount")
    @classmethod
    def _scale(cls, value: Decimal | None) -> Decimal | None:
        return None if value is None else _money_scale(value)


def _money_scale(value: Decimal) -> Decimal:
    quantized = value.quantize(Decimal(1).scaleb(-MONEY_SCALE))
    if quantized != value:
        raise ValueError(f"money has more than {MONEY_SCALE} decimal places")
    return quantized


class StandardEventBody(BaseModel):
    """The body a Standard Webhooks sender posts: one or more canonical events."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    events: list[CanonicalEvent] = Field(min_length=1, max_length=1000)
