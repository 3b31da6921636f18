"""`Simulator`: the seeded generator of deliveries, and `take` to bound its stream."""

from __future__ import annotations

import heapq
import math
import random
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson

from shoppulse.simulator.entities import (
    CATALOG,
    DISCOUNT_CODES,
    FIRST_NAMES,
    LAST_NAMES,
    TAX_RATES,
    UTC_OFFSET_HOURS,
    Cart,
    Checkout,
    Discount,
    Due,
    Line,
    Order,
    Resend,
    Store,
    fresh_body,
    fresh_item,
    order_totals,
)
from shoppulse.simulator.model import (
    DeliveryCounts,
    DeliveryKind,
    SimDelivery,
    SimulationConfig,
    StoreTruth,
    add_amount,
)
from shoppulse.simulator.money import (
    MILLISECOND,
    ZERO,
    from_usd,
    local_time,
    money_number,
    money_set,
    money_text,
    put_money,
    round_money,
    utc_time,
)


def _discount_codes(
    discount: Discount | None, amount: Decimal, currency: str
) -> list[dict[str, Any]]:
    """Shopify's `discount_codes` of a checkout or order: the code applied, if it took off any."""
    if discount is None or not amount:
        return []
    return [{"code": discount.code, "amount": money_text(amount, currency), "type": discount.kind}]


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
            Store(
                source=source,
                domain=f"{source}.myshopify.com",
                offset=timezone(timedelta(hours=UTC_OFFSET_HOURS[n % len(UTC_OFFSET_HOURS)])),
                tax_rate=Decimal(TAX_RATES[n % len(TAX_RATES)]),
                key=str(548380009 + n),
            )
            for n, source in enumerate(config.sources)
        )
        self._heap: list[tuple[int, int, Due]] = []
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
            if isinstance(item, Resend):
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

    def _later(self, delay: int, item: Due) -> None:
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
            retry = Resend(source, topic, delivery_id, body, "retry")
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
        return moment if last is None or moment > last else last + MILLISECOND

    def _step(self, backdate: timedelta) -> int:
        """Deliveries until a shopper's next action: backdated shoppers replay quickly."""
        return self._rng.randint(1, 4) if backdate else self._rng.randint(2, 40)

    def _line(self, currency: str) -> Line:
        product = self._rng.choice(CATALOG)
        return Line(
            product=product,
            quantity=self._rng.choice((1, 1, 1, 2, 2, 3)),
            price=from_usd(product["price"], currency),
            line_id=self._big_id(),
            key=self._hex(),
        )

    def _discount(self, currency: str) -> Discount | None:
        if self._rng.random() >= self.mix.discount:
            return None
        code, kind, value = self._rng.choice(DISCOUNT_CODES)
        amount = Decimal(value) if kind == "percentage" else from_usd(value, currency)
        return Discount(code, kind, amount)

    def _customer(self) -> tuple[int, str, str, str]:
        first, last = self._rng.choice(FIRST_NAMES), self._rng.choice(LAST_NAMES)
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

    def _cart_journey(self, store: Store, currency: str, backdate: timedelta) -> Iterator[int]:
        rng, truth = self._rng, self.truth[store.source]
        cart = Cart(self._hex(), [self._line(currency) for _ in range(rng.choice((1, 1, 2, 3)))])
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
        checkout = Checkout(self._big_id(), self._hex(), cart, self._discount(currency))
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
        lines = [Line(x.product, x.quantity, x.price, x.line_id, x.key) for x in cart.lines]
        yield from self._order_journey(
            store, currency, lines, checkout.discount, cart, checkout, recovered=bool(backdate)
        )

    def _order_journey(
        self,
        store: Store,
        currency: str,
        lines: list[Line],
        discount: Discount | None,
        cart: Cart | None,
        checkout: Checkout | None,
        *,
        recovered: bool = False,
    ) -> Iterator[int]:
        rng, mix, truth = self._rng, self.mix, self.truth[store.source]
        self._order_numbers[store.source] += 1
        customer = self._customer()
        if checkout is not None and checkout.email:  # the address given at checkout
            customer = (*customer[:3], checkout.email)
        order = Order(
            id=self._big_id(),
            number=1000 + self._order_numbers[store.source],
            token=self._hex(),
            currency=currency,
            lines=lines,
            totals=order_totals(lines, discount, currency, store.tax_rate),
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
            add_amount(truth.gross_sales, currency, order.totals.gross)
            add_amount(truth.discounts, currency, order.totals.discounts)
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
                add_amount(truth.gross_sales, currency, -order.totals.gross)
                add_amount(truth.discounts, currency, -order.totals.discounts)
                add_amount(truth.returns, currency, -order.returned)
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
        self, store: Store, cart: Cart, currency: str, topic: str, backdate: timedelta
    ) -> None:
        cart.updated = self._stamp(cart.updated, backdate)
        cart.created = cart.created or cart.updated
        body = fresh_body("carts_create")
        body["id"] = body["token"] = cart.token
        body["note"] = None
        body["created_at"] = utc_time(cart.created)
        body["updated_at"] = utc_time(cart.updated)
        for line in cart.lines:
            item = fresh_item("carts_create")
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
                ("total_discount", ZERO),
            ):
                put_money(item, name, amount, currency)
            del item["original_price_set"]  # Shopify sends no set for it
            body["line_items"].append(item)
        self._emit(store.source, topic, orjson.dumps(body))

    def _emit_checkout(
        self, store: Store, checkout: Checkout, currency: str, topic: str, backdate: timedelta
    ) -> None:
        checkout.updated = self._stamp(checkout.updated, backdate)
        checkout.created = checkout.created or checkout.updated
        lines = checkout.cart.lines
        totals = order_totals(lines, checkout.discount, currency, store.tax_rate)
        body = fresh_body("checkouts_create")
        body.update(
            id=checkout.id,
            token=checkout.token,
            cart_token=checkout.cart.token,
            name=f"#{checkout.id}",
            email=checkout.email,
            created_at=local_time(checkout.created, store.offset),
            updated_at=local_time(checkout.updated, store.offset),
            currency=currency,
            presentment_currency=currency,
            total_weight=totals.weight,
            abandoned_checkout_url=f"https://{store.domain}/{store.key}/checkouts/"
            f"{checkout.token}/recover?key={checkout.token[:16]}",
            discount_codes=_discount_codes(checkout.discount, totals.discounts, currency),
            tax_lines=[
                {
                    "price": money_text(totals.tax, currency),
                    "rate": orjson.Fragment(str(store.tax_rate).encode()),
                    "title": "Tax",
                    "channel_liable": False,
                }
            ],
            shipping_lines=[
                {
                    "title": "Standard",
                    "code": "Standard",
                    "price": money_text(totals.shipping, currency),
                }
            ],
            total_discounts=money_text(totals.discounts, currency),
            total_line_items_price=money_text(totals.gross, currency),
            subtotal_price=money_text(totals.subtotal, currency),
            total_tax=money_text(totals.tax, currency),
            total_price=money_text(totals.total, currency),
        )
        body["customer"].update(email=checkout.email, currency=currency)
        for line, allocation in zip(lines, totals.allocations, strict=True):
            item = fresh_item("checkouts_create")
            item.update(
                key=line.key,
                quantity=line.quantity,
                price=money_text(line.price, currency),
                variant_price=money_text(line.price, currency),
                line_price=money_text(line.total, currency),
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
                else [
                    {"amount": money_text(allocation, currency), "discount_application_index": 0}
                ],
            )
            body["line_items"].append(item)
        self._emit(store.source, topic, orjson.dumps(body))

    def _emit_order(self, store: Store, order: Order, topic: str) -> None:
        previous = order.body
        order.updated = self._stamp(order.updated, timedelta(0))
        order.created = order.created or order.updated
        body = self._order_body(store, order)
        raw = orjson.dumps(body)
        self._emit(store.source, topic, raw)
        order.body = raw
        rng = self._rng
        if previous is not None and rng.random() < self.mix.out_of_order:
            stale = Resend(store.source, "orders/updated", self._uuid(), previous, "stale")
            self._later(rng.randint(2, 20), stale)
        if rng.random() < self.mix.unusable:
            del body["total_line_items_price"], body["total_line_items_price_set"]
            broken = Resend(
                store.source, "orders/updated", self._uuid(), orjson.dumps(body), "unusable"
            )
            self._later(rng.randint(2, 20), broken)

    def _order_body(self, store: Store, order: Order) -> dict[str, Any]:
        assert order.created is not None and order.updated is not None
        cur, totals = order.currency, order.totals
        customer_id, first, last, email = order.customer
        body = fresh_body("orders_create")
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
            created_at=local_time(order.created, store.offset),
            processed_at=local_time(order.created, store.offset),
            updated_at=local_time(order.updated, store.offset),
            cancelled_at=local_time(order.cancelled_at, store.offset)
            if order.cancelled_at
            else None,
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
            total_outstanding=money_text(
                totals.total if order.financial_status == "pending" else ZERO, cur
            ),
            total_tip_received=money_text(ZERO, cur),
            tax_lines=[
                {
                    "price": money_text(totals.tax, cur),
                    "rate": orjson.Fragment(str(store.tax_rate).encode()),
                    "title": "Tax",
                    "price_set": money_set(totals.tax, cur),
                    "channel_liable": False,
                }
            ],
            discount_codes=_discount_codes(order.discount, totals.discounts, cur),
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
            put_money(body, name, amount, cur)
        for name, amount in (
            ("total_shipping_price_set", totals.shipping),
            ("current_shipping_price_set", totals.shipping),
            ("total_cash_rounding_payment_adjustment_set", ZERO),
            ("total_cash_rounding_refund_adjustment_set", ZERO),
        ):
            body[name] = money_set(amount, cur)
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
            put_money(line, name, price, cur)
        line["current_discounted_price_set"] = money_set(price, cur)
        return line

    @staticmethod
    def _order_item(line: Line, allocation: Decimal, cur: str, order: Order) -> dict[str, Any]:
        item = fresh_item("orders_create")
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
                    "amount": money_text(allocation, cur),
                    "amount_set": money_set(allocation, cur),
                    "discount_application_index": 0,
                }
            ],
        )
        put_money(item, "price", line.price, cur)
        put_money(item, "total_discount", allocation, cur)
        return item

    def _emit_refund(self, store: Store, order: Order, which: list[int], *, full: bool) -> None:
        cur, totals = order.currency, order.totals
        created = self._stamp(order.updated, timedelta(0))
        refund_id = self._big_id()
        body = fresh_body("refunds_create")
        body.update(
            id=refund_id,
            order_id=order.id,
            admin_graphql_api_id=f"gid://shopify/Refund/{refund_id}",
            created_at=local_time(created, store.offset),
            processed_at=local_time(created, store.offset),
            note="Order cancelled"
            if full
            else self._rng.choice(("Things were damaged", "Wrong size", "Arrived late")),
            restock=full,
            user_id=None,
        )
        body["total_duties_set"] = money_set(ZERO, cur)
        amount = ZERO
        for n in which:
            line, allocation = order.lines[n], totals.allocations[n]
            units = line.quantity if full else self._rng.randint(1, line.quantity)
            subtotal = round_money((line.total - allocation) * units / line.quantity, cur)
            amount += subtotal
            item = fresh_item("refunds_create")
            item.update(
                id=self._big_id(),
                quantity=units,
                line_item_id=line.line_id,
                restock_type="cancel" if full else "no_restock",
                subtotal=money_number(subtotal, cur),
                total_tax=money_number(ZERO, cur),
            )
            item["subtotal_set"] = money_set(subtotal, cur)
            item["total_tax_set"] = money_set(ZERO, cur)
            item["line_item"] = self._order_item(line, allocation, cur, order)
            body["refund_line_items"].append(item)
        transaction = body["transactions"][0]
        transaction.update(
            id=self._big_id(),
            order_id=order.id,
            amount=money_text(amount, cur),
            currency=cur,
            created_at=local_time(created, store.offset),
            processed_at=local_time(created, store.offset),
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
            add_amount(truth.returns, cur, amount)
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
