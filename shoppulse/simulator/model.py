"""The simulator's configuration and what it produces: deliveries and the truth they carry."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from decimal import Decimal
from typing import Literal

from shoppulse.simulator.money import (
    ZERO,
)

DEFAULT_URL = "http://127.0.0.1:8000"
SHOPIFY_API_VERSION = "2026-01"

DeliveryKind = Literal["fresh", "retry", "stale", "unusable"]
Expected = Literal["stored", "duplicate", "quarantined"]

#: The answer a healthy, empty ShopPulse gives to each kind of delivery.
EXPECTED_OUTCOME: dict[str, Expected] = {
    "fresh": "stored",
    "stale": "stored",
    "retry": "duplicate",
    "unusable": "quarantined",
}

# ----------------------------------------------------------------------------- configuration


@dataclass(frozen=True, slots=True)
class Mix:
    """Probabilities that shape the traffic (each in [0, 1])."""

    checkout: float = 0.45  #: a cart moves to checkout
    order: float = 0.65  #: a checkout completes (so about 29 % of carts convert)
    backdated: float = 0.15  #: a shopper whose cart activity lies 1-3 hours in the past
    direct_order: float = 0.03  #: an order without cart or checkout (point of sale)
    discount: float = 0.3  #: a checkout or order uses a discount code
    test_order: float = 0.03  #: an order is a test order (`test: true`)
    cancel: float = 0.04  #: an order is cancelled
    refund: float = 0.08  #: an order that is not cancelled gets a partial refund
    duplicate: float = 0.03  #: a delivery is sent again with the same webhook id
    out_of_order: float = 0.05  #: an older order version arrives after a newer one
    unusable: float = 0.005  #: an order update arrives without its totals (quarantined)

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if not 0 <= value <= 1:
                raise ValueError(f"Mix.{item.name} must be between 0 and 1, got {value}")

    def without_faults(self) -> Mix:
        """The same funnel with no duplicates, no stale or unusable versions, nothing backdated."""
        return replace(self, backdated=0.0, duplicate=0.0, out_of_order=0.0, unusable=0.0)


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    """What to simulate. `start` and `rate` only set the timestamps."""

    seed: int
    start: datetime
    rate: float = 20.0
    sources: tuple[str, ...] = ("demo",)
    currencies: tuple[str, ...] = ("USD",)
    mix: Mix = field(default_factory=Mix)

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError("start must carry a UTC offset")
        if not self.rate > 0 or not math.isfinite(self.rate):
            raise ValueError("rate must be a positive number of deliveries per second")
        if not self.sources:
            raise ValueError("at least one source is needed")
        if not self.currencies or any(
            len(code) != 3 or not code.isascii() or not code.isupper() for code in self.currencies
        ):
            raise ValueError("currencies must be ISO 4217 codes such as USD, EUR")


def store_sources(base: str, stores: int) -> tuple[str, ...]:
    """Source ids for `stores` simulated stores: `base`, `base-2`, `base-3`, ..."""
    if stores < 1:
        raise ValueError("stores must be at least 1")
    return (base, *(f"{base}-{n}" for n in range(2, stores + 1)))


# ----------------------------------------------------------------------------- output


@dataclass(frozen=True, slots=True)
class SimDelivery:
    """One webhook delivery as Shopify would send it."""

    index: int  #: position in the stream
    source: str  #: the ShopPulse source id it is posted to
    topic: str  #: X-Shopify-Topic
    delivery_id: str  #: X-Shopify-Webhook-Id (a retry repeats it)
    body: bytes
    sent_at: datetime  #: when it is due (start + index / rate); X-Shopify-Triggered-At
    offset: float  #: seconds after start when it is due
    kind: DeliveryKind
    will_retry: bool  #: a retry of this delivery follows later in the stream

    @property
    def expected(self) -> Expected:
        """The answer a healthy, empty ShopPulse gives: stored, duplicate or quarantined."""
        return EXPECTED_OUTCOME[self.kind]


@dataclass(slots=True)
class StoreTruth:
    """What one store's stream means under the metric definitions (docs/metrics.md)."""

    carts_created: int = 0
    carts_converted: int = 0  #: carts with a non-test order (cancelled or not)
    carts_recovered: int = 0  #: converted by an order arriving > 1 h after the cart's activity
    checkouts_started: int = 0
    checkouts_completed: int = 0
    orders_created: int = 0  #: every order, test and cancelled ones included
    orders: int = 0  #: counted orders: not test, not cancelled
    test_orders: int = 0
    cancelled_orders: int = 0  #: cancelled orders, test ones included
    refunds: int = 0  #: refunds of counted orders
    gross_sales: dict[str, Decimal] = field(default_factory=dict)  #: counted orders, by currency
    discounts: dict[str, Decimal] = field(default_factory=dict)
    returns: dict[str, Decimal] = field(default_factory=dict)  #: refunds of counted orders

    @property
    def carts_unconverted(self) -> int:
        """Carts that are abandoned once `cart_abandon_after` has passed (open until then)."""
        return self.carts_created - self.carts_converted

    def merge(self, other: StoreTruth) -> StoreTruth:
        merged = StoreTruth()
        for item in fields(self):
            mine, theirs = getattr(self, item.name), getattr(other, item.name)
            if isinstance(mine, dict):
                total = dict(mine)
                for code, amount in theirs.items():
                    total[code] = total.get(code, ZERO) + amount
                setattr(merged, item.name, total)
            else:
                setattr(merged, item.name, mine + theirs)
        return merged


@dataclass(slots=True)
class DeliveryCounts:
    """What the generator has emitted, by kind and topic."""

    total: int = 0
    fresh: int = 0
    retry: int = 0
    stale: int = 0
    unusable: int = 0
    topics: Counter[str] = field(default_factory=Counter)


def add_amount(amounts: dict[str, Decimal], currency: str, amount: Decimal) -> None:
    """Add `amount` to the running total of its currency."""
    amounts[currency] = amounts.get(currency, ZERO) + amount
