"""The store simulator: realistic Shopify webhook traffic, and the sender that posts it.

Two parts, both importable (benchmarks use them directly; `shoppulse simulate` is a thin layer):

- `Simulator` is a pure, seeded generator of deliveries (`SimDelivery`: topic, delivery id, body
  bytes, ...). Simulated shoppers create and update carts; a share of them start a checkout and a
  share of those order; orders get paid, fulfilled, sometimes cancelled or refunded. The stream
  carries the faults real senders produce: retried duplicates, stale order versions arriving after
  newer ones, late orders that recover carts abandoned hours ago, and a few unusable bodies.
  `Simulator.truth` tells what the stream means under the metric definitions (docs/metrics.md).
- `send` posts deliveries with `httpx.AsyncClient`, signed with each source's secret, paced at
  the generator's rate, and counts the answers (`SendReport`).

Bodies are filled into trimmed copies of Shopify's sample payloads (`simulator_templates/`).
Delivery `i` is stamped `start + i / rate`; the same seed, start and rate give the same bytes,
and the same seed alone gives the same topics, delivery ids and entity ids.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import json
import math
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from importlib import resources
from typing import Any, Literal

import httpx
import orjson

from ingest.providers import get_provider

DEFAULT_URL = "http://127.0.0.1:8000"
SHOPIFY_API_VERSION = "2026-01"

DeliveryKind = Literal["fresh", "retry", "stale", "unusable"]
Expected = Literal["stored", "duplicate", "quarantined"]

_EXPECTED: dict[str, Expected] = {
    "fresh": "stored",
    "stale": "stored",
    "retry": "duplicate",
    "unusable": "quarantined",
}

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


_BODIES, _ITEMS, _CATALOG = _load_templates()


def _fresh(name: str) -> dict[str, Any]:
    """A new, deep copy of a template body (its line-item list empty)."""
    body: dict[str, Any] = orjson.loads(_BODIES[name])
    return body


def _fresh_item(name: str) -> dict[str, Any]:
    """A shallow copy of a template line item: callers replace, never mutate, nested values."""
    return dict(_ITEMS[name])


# ----------------------------------------------------------------------------- money and time

#: Rough prices per US dollar, so that a catalog price looks plausible in another currency.
_PER_USD = {
    "USD": "1",
    "EUR": "0.92",
    "GBP": "0.79",
    "CAD": "1.37",
    "AUD": "1.52",
    "NZD": "1.65",
    "CHF": "0.88",
    "SEK": "10.5",
    "NOK": "10.7",
    "DKK": "6.9",
    "PLN": "4.0",
    "JPY": "150",
    "KRW": "1350",
    "INR": "83",
    "BRL": "5.0",
    "MXN": "17",
    "KWD": "0.307",
    "BHD": "0.376",
}
#: ISO 4217 minor-unit digits that differ from 2.
_MINOR_DIGITS = {
    "JPY": 0,
    "KRW": 0,
    "VND": 0,
    "CLP": 0,
    "ISK": 0,
    "UGX": 0,
    "KWD": 3,
    "BHD": 3,
    "JOD": 3,
    "OMR": 3,
    "TND": 3,
}
_ZERO = Decimal(0)


@functools.cache
def _quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-_MINOR_DIGITS.get(currency, 2))


def _round(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(_quantum(currency), ROUND_HALF_UP)


@functools.lru_cache(maxsize=8192)
def _fmt(amount: Decimal, currency: str) -> str:
    return format(_round(amount, currency), "f")


def _convert(usd: str, currency: str) -> Decimal:
    return _round(Decimal(usd) * Decimal(_PER_USD.get(currency, "1")), currency)


def _money_set(amount: Decimal, currency: str) -> dict[str, Any]:
    money = {"amount": _fmt(amount, currency), "currency_code": currency}
    return {"shop_money": money, "presentment_money": dict(money)}


def _put_money(obj: dict[str, Any], name: str, amount: Decimal, currency: str) -> None:
    """`name` as a plain string and `name_set` with shop and presentment money, equal."""
    obj[name] = _fmt(amount, currency)
    obj[f"{name}_set"] = _money_set(amount, currency)


def _number(amount: Decimal, currency: str) -> orjson.Fragment:
    """An exact decimal written as a JSON number (Shopify sends a few amounts that way)."""
    return orjson.Fragment(_fmt(amount, currency).encode())


_MS = timedelta(milliseconds=1)


def _local(moment: datetime, offset: timezone) -> str:
    return moment.astimezone(offset).isoformat(timespec="milliseconds")


def _zulu(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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
        return _EXPECTED[self.kind]


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
                    total[code] = total.get(code, _ZERO) + amount
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

    @property
    def expected_stored(self) -> int:
        return self.fresh + self.stale


def _add(amounts: dict[str, Decimal], currency: str, amount: Decimal) -> None:
    amounts[currency] = amounts.get(currency, _ZERO) + amount


# ----------------------------------------------------------------------------- entity state


@dataclass(frozen=True, slots=True)
class _Store:
    source: str
    domain: str
    offset: timezone
    tax_rate: Decimal
    key: str


_OFFSETS = (-5, 1, -8, 5.5, 0, 10, -3, 9)
_TAX_RATES = ("0.06", "0.19", "0.0875", "0.20", "0.10", "0.07", "0.21", "0.08")
_FIRST = ("Alex", "Sam", "Maria", "Jon", "Aiko", "Lena", "Omar", "Priya", "Chen", "Noah")
_LAST = ("Smith", "Garcia", "Muller", "Tanaka", "Okafor", "Rossi", "Nguyen", "Silva", "Kim")
_CODES = (
    ("WELCOME10", "percentage", "10"),
    ("SPRING15", "percentage", "15"),
    ("VIP20", "percentage", "20"),
    ("TAKE5", "fixed_amount", "5"),
    ("SAVE20", "fixed_amount", "20"),
)


@dataclass(slots=True)
class _Line:
    product: dict[str, Any]
    quantity: int
    price: Decimal
    line_id: int
    key: str

    @property
    def total(self) -> Decimal:
        return self.price * self.quantity


@dataclass(frozen=True, slots=True)
class _Discount:
    code: str
    kind: str
    value: Decimal  #: percent, or an amount in the basket's currency


@dataclass(frozen=True, slots=True)
class _Totals:
    gross: Decimal
    allocations: tuple[Decimal, ...]
    discounts: Decimal
    subtotal: Decimal
    shipping: Decimal
    tax: Decimal
    total: Decimal
    weight: int


def _totals(lines: list[_Line], discount: _Discount | None, currency: str, tax: Decimal) -> _Totals:
    """Consistent order arithmetic: gross = sum(price x qty); discounts = sum of allocations."""
    zero = _round(_ZERO, currency)
    gross = sum((line.total for line in lines), zero)
    allocations: list[Decimal] = [zero] * len(lines)
    if discount is not None and discount.kind == "percentage":
        allocations = [_round(line.total * discount.value / 100, currency) for line in lines]
    elif discount is not None and gross >= 4 * discount.value:  # the code's minimum purchase
        amount = discount.value
        for n, line in enumerate(lines[:-1]):
            allocations[n] = _round(amount * line.total / gross, currency)
        allocations[-1] = amount - sum(allocations[:-1], zero)
    discounts = sum(allocations, zero)
    subtotal = gross - discounts
    shipping = _ZERO if subtotal >= _convert("100", currency) else _convert("7.50", currency)
    tax_amount = _round(subtotal * tax, currency)
    weight = sum(int(line.product["grams"]) * line.quantity for line in lines)
    return _Totals(
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
class _Cart:
    token: str
    lines: list[_Line]
    created: datetime | None = None
    updated: datetime | None = None


@dataclass(slots=True)
class _Checkout:
    id: int
    token: str
    cart: _Cart
    discount: _Discount | None
    email: str | None = None
    created: datetime | None = None
    updated: datetime | None = None


@dataclass(slots=True)
class _Order:
    id: int
    number: int
    token: str
    currency: str
    lines: list[_Line]
    totals: _Totals
    discount: _Discount | None
    customer: tuple[int, str, str, str]
    test: bool
    cart: _Cart | None
    checkout: _Checkout | None
    financial_status: str
    fulfillment_status: str | None = None
    cancelled_at: datetime | None = None
    created: datetime | None = None
    updated: datetime | None = None
    body: bytes | None = None
    returned: Decimal = _ZERO
    refund_count: int = 0


@dataclass(frozen=True, slots=True)
class _Resend:
    source: str
    topic: str
    delivery_id: str
    body: bytes
    kind: DeliveryKind


_Due = Iterator[int] | _Resend


# ----------------------------------------------------------------------------- the generator


class Simulator:
    """A seeded, endless stream of Shopify deliveries from simulated shoppers. No I/O.

    Iterate it (or `deliveries()`) for the stream; `drain()` then finishes every journey in
    flight without starting new ones. `truth` and `counts` describe what has been emitted.
    """

    def __init__(self, config: SimulationConfig) -> None:
        self.config = config
        self.mix = config.mix
        self._rng = random.Random(config.seed)
        self._start = config.start.astimezone(UTC).replace(
            microsecond=config.start.microsecond // 1000 * 1000
        )
        self._stores = tuple(
            _Store(
                source=source,
                domain=f"{source}.myshopify.com",
                offset=timezone(timedelta(hours=_OFFSETS[n % len(_OFFSETS)])),
                tax_rate=Decimal(_TAX_RATES[n % len(_TAX_RATES)]),
                key=str(548380009 + n),
            )
            for n, source in enumerate(config.sources)
        )
        self._heap: list[tuple[int, int, _Due]] = []
        self._seq = 0
        self._index = 0
        self._now = self._start
        self._out: list[SimDelivery] = []
        self._order_numbers: Counter[str] = Counter()
        self.truth: dict[str, StoreTruth] = {source: StoreTruth() for source in config.sources}
        self.counts = DeliveryCounts()

    # ------------------------------------------------------------------ stream

    def __iter__(self) -> Iterator[SimDelivery]:
        return self.deliveries()

    def deliveries(self) -> Iterator[SimDelivery]:
        """The endless stream: due follow-ups first, otherwise a new shopper."""
        while True:
            yield self._next(start_new=True)

    def drain(self) -> Iterator[SimDelivery]:
        """Every follow-up still pending (journeys in flight, retries), in due order."""
        while self._heap:
            yield self._next(start_new=False)

    @property
    def next_offset(self) -> float:
        """Seconds after start when the next delivery is due."""
        return self._index / self.config.rate

    def total(self) -> StoreTruth:
        """The truth over every store."""
        merged = StoreTruth()
        for truth in self.truth.values():
            merged = merged.merge(truth)
        return merged

    def _next(self, *, start_new: bool) -> SimDelivery:
        index = self._index
        elapsed_ms = math.floor(index * 1000 / self.config.rate)
        self._now = self._start + timedelta(milliseconds=elapsed_ms)
        if self._heap and (not start_new or self._heap[0][0] <= index):
            item = heapq.heappop(self._heap)[2]
            if isinstance(item, _Resend):
                self._emit(item.source, item.topic, item.body, item.kind, item.delivery_id)
            else:
                self._resume(item)
        else:
            self._resume(self._journey())
        if len(self._out) != 1:
            raise RuntimeError(f"a simulation step emitted {len(self._out)} deliveries, not 1")
        self._index += 1
        return self._out.pop()

    def _resume(self, journey: Iterator[int]) -> None:
        delay = next(journey, None)
        if delay is not None:
            self._later(delay, journey)

    def _later(self, delay: int, item: _Due) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (self._index + max(1, delay), self._seq, item))

    def _emit(
        self,
        source: str,
        topic: str,
        body: bytes,
        kind: DeliveryKind = "fresh",
        delivery_id: str | None = None,
    ) -> None:
        delivery_id = delivery_id or self._uuid()
        will_retry = self._rng.random() < self.mix.duplicate
        delivery = SimDelivery(
            index=self._index,
            source=source,
            topic=topic,
            delivery_id=delivery_id,
            body=body,
            sent_at=self._now,
            offset=self._index / self.config.rate,
            kind=kind,
            will_retry=will_retry,
        )
        self._out.append(delivery)
        counts = self.counts
        counts.total += 1
        setattr(counts, kind, getattr(counts, kind) + 1)
        counts.topics[topic] += 1
        if will_retry:
            retry = _Resend(source, topic, delivery_id, body, "retry")
            self._later(self._rng.randint(3, 40), retry)

    # ------------------------------------------------------------------ random helpers

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _hex(self) -> str:
        return f"{self._rng.getrandbits(128):032x}"

    def _big_id(self) -> int:
        return self._rng.randrange(10**17, 10**18)

    def _stamp(self, last: datetime | None, backdate: timedelta) -> datetime:
        """Now (minus `backdate`), kept strictly after the entity's previous version."""
        moment = self._now - backdate
        return moment if last is None or moment > last else last + _MS

    def _step(self, backdate: timedelta) -> int:
        """Deliveries until a shopper's next action: backdated shoppers replay quickly."""
        return self._rng.randint(1, 4) if backdate else self._rng.randint(2, 40)

    def _line(self, currency: str) -> _Line:
        product = self._rng.choice(_CATALOG)
        return _Line(
            product=product,
            quantity=self._rng.choice((1, 1, 1, 2, 2, 3)),
            price=_convert(product["price"], currency),
            line_id=self._big_id(),
            key=self._hex(),
        )

    def _discount(self, currency: str) -> _Discount | None:
        if self._rng.random() >= self.mix.discount:
            return None
        code, kind, value = self._rng.choice(_CODES)
        amount = Decimal(value) if kind == "percentage" else _convert(value, currency)
        return _Discount(code, kind, amount)

    def _customer(self) -> tuple[int, str, str, str]:
        first, last = self._rng.choice(_FIRST), self._rng.choice(_LAST)
        email = f"{first}.{last}.{self._rng.randrange(10**6)}@example.com".lower()
        return self._big_id(), first, last, email

    # ------------------------------------------------------------------ journeys

    def _journey(self) -> Iterator[int]:
        store = self._rng.choice(self._stores)
        currency = self._rng.choice(self.config.currencies)
        if self._rng.random() < self.mix.direct_order:
            lines = [self._line(currency) for _ in range(self._rng.randint(1, 3))]
            return self._order_journey(store, currency, lines, self._discount(currency), None, None)
        backdate = timedelta(0)
        if self._rng.random() < self.mix.backdated:
            backdate = timedelta(milliseconds=self._rng.randrange(3_600_000, 10_800_000))
        return self._cart_journey(store, currency, backdate)

    def _cart_journey(self, store: _Store, currency: str, backdate: timedelta) -> Iterator[int]:
        rng, truth = self._rng, self.truth[store.source]
        cart = _Cart(self._hex(), [self._line(currency) for _ in range(rng.choice((1, 1, 2, 3)))])
        self._emit_cart(store, cart, currency, "carts/create", backdate)
        truth.carts_created += 1
        for _ in range(rng.choice((0, 0, 1, 1, 2, 3))):
            yield self._step(backdate)
            if len(cart.lines) < 5 and rng.random() < 0.6:
                cart.lines.append(self._line(currency))
            else:
                line = rng.choice(cart.lines)
                line.quantity = max(1, line.quantity + rng.choice((-1, 1, 1)))
            self._emit_cart(store, cart, currency, "carts/update", backdate)
        if rng.random() >= self.mix.checkout:
            return
        yield self._step(backdate)
        checkout = _Checkout(self._big_id(), self._hex(), cart, self._discount(currency))
        self._emit_checkout(store, checkout, currency, "checkouts/create", backdate)
        truth.checkouts_started += 1
        for _ in range(rng.choice((0, 1, 1, 2))):
            yield self._step(backdate)
            checkout.email = checkout.email or self._customer()[3]
            self._emit_checkout(store, checkout, currency, "checkouts/update", backdate)
        if rng.random() >= self.mix.order:
            return
        # A backdated checkout completes now: a late order recovering an abandoned cart.
        yield rng.randint(20, 120) if backdate else self._step(backdate)
        lines = [_Line(x.product, x.quantity, x.price, x.line_id, x.key) for x in cart.lines]
        yield from self._order_journey(
            store, currency, lines, checkout.discount, cart, checkout, recovered=bool(backdate)
        )

    def _order_journey(
        self,
        store: _Store,
        currency: str,
        lines: list[_Line],
        discount: _Discount | None,
        cart: _Cart | None,
        checkout: _Checkout | None,
        *,
        recovered: bool = False,
    ) -> Iterator[int]:
        rng, mix, truth = self._rng, self.mix, self.truth[store.source]
        self._order_numbers[store.source] += 1
        customer = self._customer()
        if checkout is not None and checkout.email:  # the address given at checkout
            customer = (*customer[:3], checkout.email)
        order = _Order(
            id=self._big_id(),
            number=1000 + self._order_numbers[store.source],
            token=self._hex(),
            currency=currency,
            lines=lines,
            totals=_totals(lines, discount, currency, store.tax_rate),
            discount=discount,
            customer=customer,
            test=rng.random() < mix.test_order,
            cart=cart,
            checkout=checkout,
            financial_status="pending" if rng.random() < 0.15 else "paid",
        )
        self._emit_order(store, order, "orders/create")
        truth.orders_created += 1
        if order.test:
            truth.test_orders += 1
        else:
            truth.orders += 1
            _add(truth.gross_sales, currency, order.totals.gross)
            _add(truth.discounts, currency, order.totals.discounts)
            if cart is not None:
                truth.carts_converted += 1
                truth.carts_recovered += recovered
            if checkout is not None:
                truth.checkouts_completed += 1
        yield rng.randint(1, 10)
        order.financial_status = "paid"
        self._emit_order(store, order, "orders/paid")
        if rng.random() < mix.cancel:
            yield self._step(timedelta(0))
            order.cancelled_at = self._stamp(order.updated, timedelta(0))
            order.financial_status = "refunded"
            self._emit_order(store, order, "orders/cancelled")
            truth.cancelled_orders += 1
            if not order.test:
                truth.orders -= 1
                _add(truth.gross_sales, currency, -order.totals.gross)
                _add(truth.discounts, currency, -order.totals.discounts)
                _add(truth.returns, currency, -order.returned)
                truth.refunds -= order.refund_count
            if rng.random() < 0.5:  # the cancellation refunds everything: not a return
                yield self._step(timedelta(0))
                self._emit_refund(store, order, list(range(len(order.lines))), full=True)
            return
        if rng.random() < 0.6:
            yield self._step(timedelta(0))
            order.fulfillment_status = "fulfilled"
            self._emit_order(store, order, "orders/updated")
        if rng.random() < mix.refund:
            yield self._step(timedelta(0))
            self._emit_refund(store, order, [rng.randrange(len(order.lines))], full=False)
            yield rng.randint(1, 5)
            order.financial_status = "partially_refunded"
            self._emit_order(store, order, "orders/updated")

    # ------------------------------------------------------------------ emitters

    def _emit_cart(
        self, store: _Store, cart: _Cart, currency: str, topic: str, backdate: timedelta
    ) -> None:
        cart.updated = self._stamp(cart.updated, backdate)
        cart.created = cart.created or cart.updated
        body = _fresh("carts_create")
        body["id"] = body["token"] = cart.token
        body["note"] = None
        body["created_at"] = _zulu(cart.created)
        body["updated_at"] = _zulu(cart.updated)
        for line in cart.lines:
            item = _fresh_item("carts_create")
            variant = line.product["variant_id"]
            item.update(
                id=variant,
                variant_id=variant,
                product_id=line.product["product_id"],
                key=f"{variant}:{line.key}",
                quantity=line.quantity,
                sku=line.product["sku"],
                title=line.product["title"],
                vendor=line.product["vendor"],
                grams=line.product["grams"],
                discounts=[],
            )
            for name, amount in (
                ("price", line.price),
                ("original_price", line.price),
                ("discounted_price", line.price),
                ("line_price", line.total),
                ("original_line_price", line.total),
                ("total_discount", _ZERO),
            ):
                _put_money(item, name, amount, currency)
            del item["original_price_set"]  # Shopify sends no set for it
            body["line_items"].append(item)
        self._emit(store.source, topic, orjson.dumps(body))

    def _emit_checkout(
        self, store: _Store, checkout: _Checkout, currency: str, topic: str, backdate: timedelta
    ) -> None:
        checkout.updated = self._stamp(checkout.updated, backdate)
        checkout.created = checkout.created or checkout.updated
        lines = checkout.cart.lines
        totals = _totals(lines, checkout.discount, currency, store.tax_rate)
        body = _fresh("checkouts_create")
        body.update(
            id=checkout.id,
            token=checkout.token,
            cart_token=checkout.cart.token,
            name=f"#{checkout.id}",
            email=checkout.email,
            created_at=_local(checkout.created, store.offset),
            updated_at=_local(checkout.updated, store.offset),
            currency=currency,
            presentment_currency=currency,
            total_weight=totals.weight,
            abandoned_checkout_url=f"https://{store.domain}/{store.key}/checkouts/"
            f"{checkout.token}/recover?key={checkout.token[:16]}",
            discount_codes=[]
            if checkout.discount is None or not totals.discounts
            else [
                {
                    "code": checkout.discount.code,
                    "amount": _fmt(totals.discounts, currency),
                    "type": checkout.discount.kind,
                }
            ],
            tax_lines=[
                {
                    "price": _fmt(totals.tax, currency),
                    "rate": orjson.Fragment(str(store.tax_rate).encode()),
                    "title": "Tax",
                    "channel_liable": False,
                }
            ],
            shipping_lines=[
                {"title": "Standard", "code": "Standard", "price": _fmt(totals.shipping, currency)}
            ],
            total_discounts=_fmt(totals.discounts, currency),
            total_line_items_price=_fmt(totals.gross, currency),
            subtotal_price=_fmt(totals.subtotal, currency),
            total_tax=_fmt(totals.tax, currency),
            total_price=_fmt(totals.total, currency),
        )
        body["customer"].update(email=checkout.email, currency=currency)
        for line, allocation in zip(lines, totals.allocations, strict=True):
            item = _fresh_item("checkouts_create")
            item.update(
                key=line.key,
                quantity=line.quantity,
                price=_fmt(line.price, currency),
                variant_price=_fmt(line.price, currency),
                line_price=_fmt(line.total, currency),
                sku=line.product["sku"],
                title=line.product["title"],
                presentment_title=line.product["title"],
                variant_title=line.product.get("variant_title"),
                presentment_variant_title=line.product.get("variant_title"),
                vendor=line.product["vendor"],
                grams=line.product["grams"],
                product_id=line.product["product_id"],
                variant_id=line.product["variant_id"],
                tax_lines=[],
                applied_discounts=[],
                discount_allocations=[]
                if not allocation
                else [{"amount": _fmt(allocation, currency), "discount_application_index": 0}],
            )
            body["line_items"].append(item)
        self._emit(store.source, topic, orjson.dumps(body))

    def _emit_order(self, store: _Store, order: _Order, topic: str) -> None:
        previous = order.body
        order.updated = self._stamp(order.updated, timedelta(0))
        order.created = order.created or order.updated
        body = self._order_body(store, order)
        raw = orjson.dumps(body)
        self._emit(store.source, topic, raw)
        order.body = raw
        rng = self._rng
        if previous is not None and rng.random() < self.mix.out_of_order:
            stale = _Resend(store.source, "orders/updated", self._uuid(), previous, "stale")
            self._later(rng.randint(2, 20), stale)
        if rng.random() < self.mix.unusable:
            del body["total_line_items_price"], body["total_line_items_price_set"]
            broken = _Resend(
                store.source, "orders/updated", self._uuid(), orjson.dumps(body), "unusable"
            )
            self._later(rng.randint(2, 20), broken)

    def _order_body(self, store: _Store, order: _Order) -> dict[str, Any]:
        assert order.created is not None and order.updated is not None
        cur, totals = order.currency, order.totals
        customer_id, first, last, email = order.customer
        body = _fresh("orders_create")
        checkout = order.checkout
        body.update(
            id=order.id,
            admin_graphql_api_id=f"gid://shopify/Order/{order.id}",
            name=f"#{order.number}",
            number=order.number - 1000,
            order_number=order.number,
            token=order.token,
            cart_token=order.cart.token if order.cart else None,
            checkout_id=checkout.id if checkout else None,
            checkout_token=checkout.token if checkout else None,
            source_name="web" if checkout else "pos",
            confirmation_number=order.token[:9].upper(),
            confirmed=True,
            created_at=_local(order.created, store.offset),
            processed_at=_local(order.created, store.offset),
            updated_at=_local(order.updated, store.offset),
            cancelled_at=_local(order.cancelled_at, store.offset) if order.cancelled_at else None,
            cancel_reason="customer" if order.cancelled_at else None,
            closed_at=None,
            currency=cur,
            presentment_currency=cur,
            email=email,
            contact_email=email,
            financial_status=order.financial_status,
            fulfillment_status=order.fulfillment_status,
            test=order.test,
            payment_gateway_names=["bogus"] if order.test else ["shopify_payments"],
            order_status_url=f"https://{store.domain}/{store.key}/orders/{order.token}"
            "/authenticate?key=" + order.token[16:],
            tags="",
            taxes_included=False,
            total_weight=totals.weight,
            total_outstanding=_fmt(
                totals.total if order.financial_status == "pending" else _ZERO, cur
            ),
            total_tip_received=_fmt(_ZERO, cur),
            tax_lines=[
                {
                    "price": _fmt(totals.tax, cur),
                    "rate": orjson.Fragment(str(store.tax_rate).encode()),
                    "title": "Tax",
                    "price_set": _money_set(totals.tax, cur),
                    "channel_liable": False,
                }
            ],
            discount_codes=[]
            if order.discount is None or not totals.discounts
            else [
                {
                    "code": order.discount.code,
                    "amount": _fmt(totals.discounts, cur),
                    "type": order.discount.kind,
                }
            ],
            discount_applications=[]
            if order.discount is None or not totals.discounts
            else [
                {
                    "target_type": "line_item",
                    "type": "discount_code",
                    "value": format(order.discount.value, "f"),
                    "value_type": order.discount.kind,
                    "allocation_method": "across",
                    "target_selection": "all",
                    "code": order.discount.code,
                }
            ],
        )
        for name, amount in (
            ("total_line_items_price", totals.gross),
            ("total_discounts", totals.discounts),
            ("subtotal_price", totals.subtotal),
            ("total_tax", totals.tax),
            ("total_price", totals.total),
            ("current_subtotal_price", totals.subtotal),
            ("current_total_discounts", totals.discounts),
            ("current_total_tax", totals.tax),
            ("current_total_price", totals.total),
        ):
            _put_money(body, name, amount, cur)
        for name, amount in (
            ("total_shipping_price_set", totals.shipping),
            ("current_shipping_price_set", totals.shipping),
            ("total_cash_rounding_payment_adjustment_set", _ZERO),
            ("total_cash_rounding_refund_adjustment_set", _ZERO),
        ):
            body[name] = _money_set(amount, cur)
        body["customer"].update(
            id=customer_id,
            first_name=first,
            last_name=last,
            email=email,
            currency=cur,
            admin_graphql_api_id=f"gid://shopify/Customer/{customer_id}",
        )
        for address in ("billing_address", "shipping_address"):
            body[address].update(first_name=first, last_name=last, name=f"{first} {last}")
        body["shipping_lines"] = [self._shipping_line(totals.shipping, cur, order.id)]
        for line, allocation in zip(order.lines, totals.allocations, strict=True):
            body["line_items"].append(self._order_item(line, allocation, cur, order))
        return body

    @staticmethod
    def _shipping_line(price: Decimal, cur: str, order_id: int) -> dict[str, Any]:
        line: dict[str, Any] = {
            "id": order_id + 1,
            "title": "Standard",
            "code": "Standard",
            "source": "shopify",
            "is_removed": False,
            "tax_lines": [],
            "discount_allocations": [],
        }
        for name in ("price", "discounted_price"):
            _put_money(line, name, price, cur)
        line["current_discounted_price_set"] = _money_set(price, cur)
        return line

    @staticmethod
    def _order_item(line: _Line, allocation: Decimal, cur: str, order: _Order) -> dict[str, Any]:
        item = _fresh_item("orders_create")
        product = line.product
        fulfilled = order.fulfillment_status == "fulfilled"
        item.update(
            id=line.line_id,
            admin_graphql_api_id=f"gid://shopify/LineItem/{line.line_id}",
            attributed_staffs=[],
            quantity=line.quantity,
            current_quantity=line.quantity,
            fulfillable_quantity=0 if fulfilled else line.quantity,
            fulfillment_status="fulfilled" if fulfilled else None,
            grams=product["grams"],
            name=product["title"],
            title=product["title"],
            sku=product["sku"],
            vendor=product["vendor"],
            product_id=product["product_id"],
            variant_id=product["variant_id"],
            variant_title=product.get("variant_title"),
            product_exists=True,
            sales_line_item_group_id=None,
            discount_allocations=[]
            if not allocation
            else [
                {
                    "amount": _fmt(allocation, cur),
                    "amount_set": _money_set(allocation, cur),
                    "discount_application_index": 0,
                }
            ],
        )
        _put_money(item, "price", line.price, cur)
        _put_money(item, "total_discount", allocation, cur)
        return item

    def _emit_refund(self, store: _Store, order: _Order, which: list[int], *, full: bool) -> None:
        cur, totals = order.currency, order.totals
        created = self._stamp(order.updated, timedelta(0))
        refund_id = self._big_id()
        body = _fresh("refunds_create")
        body.update(
            id=refund_id,
            order_id=order.id,
            admin_graphql_api_id=f"gid://shopify/Refund/{refund_id}",
            created_at=_local(created, store.offset),
            processed_at=_local(created, store.offset),
            note="Order cancelled"
            if full
            else self._rng.choice(("Things were damaged", "Wrong size", "Arrived late")),
            restock=full,
            user_id=None,
        )
        body["total_duties_set"] = _money_set(_ZERO, cur)
        amount = _ZERO
        for n in which:
            line, allocation = order.lines[n], totals.allocations[n]
            units = line.quantity if full else self._rng.randint(1, line.quantity)
            subtotal = _round((line.total - allocation) * units / line.quantity, cur)
            amount += subtotal
            item = _fresh_item("refunds_create")
            item.update(
                id=self._big_id(),
                quantity=units,
                line_item_id=line.line_id,
                restock_type="cancel" if full else "no_restock",
                subtotal=_number(subtotal, cur),
                total_tax=_number(_ZERO, cur),
            )
            item["subtotal_set"] = _money_set(subtotal, cur)
            item["total_tax_set"] = _money_set(_ZERO, cur)
            item["line_item"] = self._order_item(line, allocation, cur, order)
            body["refund_line_items"].append(item)
        transaction = body["transactions"][0]
        transaction.update(
            id=self._big_id(),
            order_id=order.id,
            amount=_fmt(amount, cur),
            currency=cur,
            created_at=_local(created, store.offset),
            processed_at=_local(created, store.offset),
            test=order.test,
            payment_id=f"#{order.number}.1",
            message="Refund",
            total_unsettled_set={
                "presentment_money": {"amount": "0.0", "currency": cur},
                "shop_money": {"amount": "0.0", "currency": cur},
            },
        )
        body["transactions"] = [transaction]
        self._emit(store.source, "refunds/create", orjson.dumps(body))
        if order.cancelled_at is None and not order.test:
            truth = self.truth[store.source]
            truth.refunds += 1
            _add(truth.returns, cur, amount)
        order.returned += amount
        order.refund_count += 1


def take(simulator: Simulator, *, count: int = 0, duration: float = 0) -> Iterator[SimDelivery]:
    """The first `count` deliveries, or those due within `duration` seconds (0: no bound).

    Nothing beyond the bound is generated, so `simulator.truth` covers exactly what was taken.
    """
    stream = simulator.deliveries()
    taken = 0
    while not (count and taken >= count) and not (duration and simulator.next_offset >= duration):
        yield next(stream)
        taken += 1


# ----------------------------------------------------------------------------- the sender


@dataclass(slots=True)
class SendReport:
    """What the sender did and what it was answered."""

    sent: int = 0  #: deliveries finished (answered, or given up on)
    stored: int = 0  #: 200 stored
    duplicate: int = 0  #: 200 duplicate
    quarantined: int = 0  #: 202 quarantined
    client_errors: int = 0  #: 4xx
    server_errors: int = 0  #: 5xx (503 only once retries ran out)
    errors: int = 0  #: connection errors and timeouts
    retried_503: int = 0  #: 503 answers that were retried after Retry-After
    unexpected: int = 0  #: 2xx answers other than the expected one (stored/duplicate/quarantined)
    status_codes: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)  #: the first few failures, described
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)  #: a sample of request seconds
    _seen_latencies: int = 0

    @property
    def failed(self) -> int:
        return self.client_errors + self.server_errors + self.errors

    @property
    def throughput(self) -> float:
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0

    def latency(self, quantile: float) -> float | None:
        """A latency quantile in seconds over the sampled requests (None before any)."""
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(quantile * len(ordered)))]

    def _observe(self, seconds: float, rng: random.Random) -> None:
        self._seen_latencies += 1
        if len(self.latencies) < _LATENCY_SAMPLE:
            self.latencies.append(seconds)
        else:
            slot = rng.randrange(self._seen_latencies)
            if slot < _LATENCY_SAMPLE:
                self.latencies[slot] = seconds

    def _fail(self, text: str) -> None:
        if len(self.failures) < 10:
            self.failures.append(text)


_LATENCY_SAMPLE = 100_000
_Work = tuple[SimDelivery, dict[str, str], asyncio.Event | None, asyncio.Event | None]


def _retry_after(response: httpx.Response, ceiling: float) -> float:
    value = response.headers.get("retry-after", "")
    seconds = float(value) if value.strip().isdigit() else 1.0
    return min(max(seconds, 0.0), ceiling)


async def send(
    deliveries: Iterable[SimDelivery],
    *,
    secrets: Mapping[str, str],
    url: str = DEFAULT_URL,
    concurrency: int = 16,
    pace: bool = True,
    stop: asyncio.Event | None = None,
    progress: Callable[[SendReport], None] | None = None,
    progress_interval: float = 0.2,
    transport: httpx.AsyncBaseTransport | None = None,
    timeout: float = 10.0,
    max_retry_after: float = 30.0,
    max_503_retries: int = 20,
) -> SendReport:
    """POST every delivery to `url`/webhooks/<source>, signed with `secrets[source]`.

    Paced so that a delivery goes out `offset` seconds after the start (`pace=False`: as fast
    as the server answers). A retry waits until its original has been answered, as a real
    platform retries only after the previous attempt. 503 answers are retried after their
    Retry-After (capped by `max_retry_after`). Setting `stop` stops taking new deliveries;
    those already queued are still sent.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    provider = get_provider("shopify")
    report = SendReport()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[_Work | None] = asyncio.Queue(maxsize=concurrency * 2)
    originals: dict[tuple[str, str], asyncio.Event] = {}
    sample_rng = random.Random(0)
    started = loop.time()

    async def produce() -> None:
        for delivery in deliveries:
            if stop.is_set():
                break
            wait = started + delivery.offset - loop.time() if pace else 0.0
            if wait > 0.05:
                try:
                    await asyncio.wait_for(stop.wait(), wait)
                    break
                except TimeoutError:
                    pass
            elif wait > 0:
                await asyncio.sleep(wait)
            headers = provider.sign(
                delivery.body,
                secrets.get(delivery.source, ""),
                topic=delivery.topic,
                delivery_id=delivery.delivery_id,
                timestamp=int(delivery.sent_at.timestamp()),
            )
            headers["X-Shopify-Shop-Domain"] = f"{delivery.source}.myshopify.com"
            headers["X-Shopify-API-Version"] = SHOPIFY_API_VERSION
            key = (delivery.source, delivery.delivery_id)
            before = originals.pop(key, None) if delivery.kind == "retry" else None
            done = None
            if delivery.will_retry:
                done = originals[key] = asyncio.Event()
            await queue.put((delivery, headers, before, done))
        for _ in range(concurrency):  # on failure the task group cancels the workers instead
            await queue.put(None)

    async def post(
        client: httpx.AsyncClient, delivery: SimDelivery, headers: dict[str, str]
    ) -> None:
        attempts = 0
        while True:
            begun = time.perf_counter()
            try:
                response = await client.post(
                    f"/webhooks/{delivery.source}", content=delivery.body, headers=headers
                )
            except httpx.HTTPError as exc:
                report.errors += 1
                what = f"{type(exc).__name__}: {exc}"
                report._fail(f"{delivery.topic} {delivery.delivery_id}: {what}")
                return
            report._observe(time.perf_counter() - begun, sample_rng)
            status = response.status_code
            if status == 503 and attempts < max_503_retries:
                attempts += 1
                report.retried_503 += 1
                await asyncio.sleep(_retry_after(response, max_retry_after))
                continue
            report.status_codes[status] += 1
            outcome: str
            if status == 202:
                outcome = "quarantined"
            elif 200 <= status < 300:
                outcome = "duplicate" if _status_of(response) == "duplicate" else "stored"
            else:
                outcome = "client_error" if status < 500 else "server_error"
                report._fail(
                    f"{delivery.topic} {delivery.delivery_id}: HTTP {status} {response.text[:200]}"
                )
            if outcome == "stored":
                report.stored += 1
            elif outcome == "duplicate":
                report.duplicate += 1
            elif outcome == "quarantined":
                report.quarantined += 1
            elif outcome == "client_error":
                report.client_errors += 1
            else:
                report.server_errors += 1
            if outcome in _EXPECTED.values() and outcome != delivery.expected:
                report.unexpected += 1
            return

    async def work(client: httpx.AsyncClient) -> None:
        while (item := await queue.get()) is not None:
            delivery, headers, before, done = item
            try:
                if before is not None:
                    await before.wait()
                await post(client, delivery, headers)
                report.sent += 1
            finally:
                if done is not None:
                    done.set()

    async def tick() -> None:
        assert progress is not None
        while True:
            await asyncio.sleep(progress_interval)
            report.elapsed = loop.time() - started
            progress(report)

    # One keep-alive connection per worker, each in its own client: httpcore's pool scans all of
    # its connections on every request, which at 32 connections doubled the sender's CPU per
    # request. Together the clients are the pool of `concurrency` connections.
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    clients = [
        httpx.AsyncClient(base_url=url, transport=transport, limits=limits, timeout=timeout)
        for _ in range(concurrency)
    ]
    ticker = asyncio.create_task(tick()) if progress is not None else None
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(produce())
            for client in clients:
                group.create_task(work(client))
    finally:
        if ticker is not None:
            ticker.cancel()
        report.elapsed = loop.time() - started
        for client in clients:
            await client.aclose()
    if progress is not None:
        progress(report)
    return report


def _status_of(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    status = body.get("status") if isinstance(body, dict) else None
    return status if isinstance(status, str) else None
