"""The store simulator: a deterministic, realistic stream, and a sender whose report matches
what the real service stores."""

from __future__ import annotations

import asyncio
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import httpx
import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from ingest.events import CanonicalEvent
from ingest.providers import get_provider
from ingest.providers.base import UnusableDelivery
from shoppulse.cli import app
from shoppulse.service import create_app
from shoppulse.settings import Settings
from shoppulse.simulator import (
    Mix,
    SendReport,
    SimDelivery,
    SimulationConfig,
    Simulator,
    StoreTruth,
    send,
    store_sources,
    take,
)
from tests.conftest import SECRET, FrozenClock, make_source
from tests.e2e.server import ServiceProcess
from tests.helpers.ports import free_port

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SHOPIFY = get_provider("shopify")
HOUR = timedelta(hours=1)


def simulator(seed: int = 7, **options: Any) -> Simulator:
    return Simulator(SimulationConfig(seed=seed, start=options.pop("start", START), **options))


def stream(sim: Simulator, count: int) -> list[SimDelivery]:
    """`count` deliveries, then every journey in flight finished."""
    return [*take(sim, count=count), *sim.drain()]


def normalize(delivery: SimDelivery) -> CanonicalEvent:
    events = SHOPIFY.normalize(delivery.topic, orjson.loads(delivery.body), {})
    assert len(events) == 1
    return events[0]


def money(value: Any) -> Decimal:
    assert isinstance(value, str), f"money must be a decimal string, got {value!r}"
    return Decimal(value)


def exact(body: bytes) -> Any:
    """The body with fractional JSON numbers read as exact decimals (refunds have a few)."""
    return json.loads(body, parse_float=Decimal)


@pytest.fixture(scope="module")
def big() -> tuple[Simulator, list[SimDelivery]]:
    """A few thousand carts over three stores and three currencies."""
    sim = simulator(11, sources=("north", "south", "east"), currencies=("USD", "EUR", "JPY"))
    return sim, stream(sim, 8_000)


# ----------------------------------------------------------------------------- determinism


def test_the_same_seed_gives_the_same_deliveries() -> None:
    first = [(d.topic, d.delivery_id, d.body) for d in take(simulator(7), count=1000)]
    again = [(d.topic, d.delivery_id, d.body) for d in take(simulator(7), count=1000)]
    other = [(d.topic, d.delivery_id, d.body) for d in take(simulator(8), count=1000)]
    assert first == again
    assert {d[1] for d in first}.isdisjoint(d[1] for d in other)


def test_start_and_rate_change_only_the_timestamps() -> None:
    base = list(take(simulator(7), count=600))
    moved = list(take(simulator(7, start=START + timedelta(days=3), rate=5.0), count=600))
    assert [(d.topic, d.delivery_id, d.kind) for d in moved] == [
        (d.topic, d.delivery_id, d.kind) for d in base
    ]
    assert sum(a.body != b.body for a, b in zip(base, moved, strict=True)) > 550
    times = {"created_at", "updated_at"}
    unusable = {d.delivery_id for d in base if d.kind == "unusable"}
    for a, b in zip(base, moved, strict=True):
        if a.delivery_id not in unusable:  # nor a retry of an unusable one
            assert normalize(a).model_dump(exclude=times) == normalize(b).model_dump(exclude=times)
    assert moved[400].sent_at - moved[0].sent_at == timedelta(seconds=400 / 5.0)


def test_take_stops_at_the_bound_without_generating_more() -> None:
    sim = simulator(3, rate=10.0)
    deliveries = list(take(sim, duration=30))
    assert len(deliveries) == 300 == sim.counts.total
    assert deliveries[-1].offset < 30


# ----------------------------------------------------------------------------- bodies


def test_every_body_normalizes_except_the_deliberately_unusable(
    big: tuple[Simulator, list[SimDelivery]],
) -> None:
    sim, deliveries = big
    kinds: Counter[str] = Counter()
    unusable: set[str] = set()
    for delivery in deliveries:
        kinds[delivery.kind] += 1
        if delivery.kind == "unusable":
            unusable.add(delivery.delivery_id)
        if delivery.delivery_id in unusable:  # the unusable body, or a retry of it
            with pytest.raises(UnusableDelivery, match="total_line_items_price"):
                normalize(delivery)
        else:
            event = normalize(delivery)
            assert event.entity_id
    assert kinds == Counter(
        fresh=sim.counts.fresh,
        retry=sim.counts.retry,
        stale=sim.counts.stale,
        unusable=sim.counts.unusable,
    )
    assert min(kinds.values()) > 0
    assert 0.015 < kinds["retry"] / len(deliveries) < 0.05


def _check_sets(obj: Any, currency: str, path: str = "") -> None:
    """Every `x_set` equals plain `x`; shop and presentment money agree; one currency."""
    if isinstance(obj, list):
        for n, value in enumerate(obj):
            _check_sets(value, currency, f"{path}[{n}]")
        return
    if not isinstance(obj, dict):
        return
    for key, value in obj.items():
        where = f"{path}.{key}"
        if isinstance(value, dict | list):
            if key.endswith("_set") and isinstance(value, dict) and "shop_money" in value:
                shop = value["shop_money"]
                assert shop == value["presentment_money"], where
                plain = obj.get(key.removesuffix("_set"))
                if plain is not None:
                    assert Decimal(plain) == money(shop["amount"]), where
            _check_sets(value, currency, where)
        elif key in {"currency_code", "currency"} and value is not None:
            assert value == currency, where
        elif isinstance(value, Decimal | float):  # Shopify writes these few as JSON numbers
            assert key in {"rate", "subtotal", "total_tax"}, where


def test_money_is_consistent_in_every_body(big: tuple[Simulator, list[SimDelivery]]) -> None:
    _, deliveries = big
    seen: Counter[str] = Counter()
    orders: dict[str, dict[str, Any]] = {}
    for delivery in deliveries:
        if delivery.kind != "fresh":
            continue
        kind = delivery.topic.split("/")[0]
        body = exact(delivery.body) if kind == "refunds" else orjson.loads(delivery.body)
        if kind == "carts":
            currency = body["line_items"][0]["price_set"]["shop_money"]["currency_code"]
            for item in body["line_items"]:
                assert money(item["line_price"]) == money(item["price"]) * item["quantity"]
        elif kind == "checkouts":
            currency = body["currency"]
            line_total = sum(money(i["line_price"]) for i in body["line_items"])
            assert money(body["total_line_items_price"]) == line_total
            assert money(body["subtotal_price"]) == line_total - money(body["total_discounts"])
            assert money(body["total_price"]) == money(body["subtotal_price"]) + money(
                body["total_tax"]
            ) + money(body["shipping_lines"][0]["price"])
        elif kind == "orders":
            currency = body["currency"]
            items = body["line_items"]
            gross = sum(money(i["price"]) * i["quantity"] for i in items)
            allocated = sum(money(a["amount"]) for i in items for a in i["discount_allocations"])
            discounts = money(body["total_discounts"])
            assert money(body["total_line_items_price"]) == gross
            assert discounts == allocated == sum(money(i["total_discount"]) for i in items)
            assert money(body["subtotal_price"]) == gross - discounts
            shipping = money(body["total_shipping_price_set"]["shop_money"]["amount"])
            assert money(body["total_price"]) == gross - discounts + shipping + money(
                body["total_tax"]
            )
            assert (discounts > 0) == bool(body["discount_codes"])
            event = normalize(delivery)
            assert (event.gross_sales, event.discounts, event.currency) == (
                gross,
                discounts,
                currency,
            )
            orders[str(body["id"])] = body
        else:
            order = orders[str(body["order_id"])]
            currency = order["currency"]
            lines = {i["id"]: i for i in order["line_items"]}
            refunded = Decimal(0)
            for item in body["refund_line_items"]:
                line = lines[item["line_item_id"]]
                net = money(line["price"]) * line["quantity"] - money(line["total_discount"])
                assert 0 < money(item["subtotal_set"]["shop_money"]["amount"]) <= net
                assert item["subtotal"] == money(item["subtotal_set"]["shop_money"]["amount"])
                refunded += money(item["subtotal_set"]["shop_money"]["amount"])
            assert (
                money(body["transactions"][0]["amount"])
                == refunded
                == normalize(delivery).refund_amount
            )
        if delivery.index % 3 == 0:  # the deep walk on a third of the bodies is plenty
            _check_sets(body, currency)
        digits = {"JPY": 0}.get(currency, 2)
        amount = money(body["total_price"] if kind in {"checkouts", "orders"} else "0")
        assert amount == amount.quantize(Decimal(1).scaleb(-digits))
        assert amount.as_tuple().exponent == -digits or kind not in {"checkouts", "orders"}
        seen[kind] += 1
    assert min(seen.values()) > 50, seen


# ----------------------------------------------------------------------------- funnel and truth


@dataclass
class _Fold:
    """A reference reading of the stream under the metric definitions, for one source."""

    carts: dict[str, datetime] = field(default_factory=dict)  # token -> last activity
    checkouts: dict[str, str | None] = field(default_factory=dict)  # token -> cart token
    orders: dict[str, CanonicalEvent] = field(default_factory=dict)  # id -> latest version
    refunds: list[CanonicalEvent] = field(default_factory=list)


def _fold(deliveries: list[SimDelivery]) -> dict[str, StoreTruth]:
    folds: defaultdict[str, _Fold] = defaultdict(_Fold)
    seen: set[tuple[str, str]] = set()
    for delivery in deliveries:
        if (delivery.source, delivery.delivery_id) in seen:
            continue
        seen.add((delivery.source, delivery.delivery_id))
        if delivery.kind == "unusable":
            continue
        event, fold = normalize(delivery), folds[delivery.source]
        assert event.updated_at is not None
        if event.kind == "cart":
            last = fold.carts.get(event.entity_id)
            fold.carts[event.entity_id] = max(event.updated_at, last or event.updated_at)
        elif event.kind == "checkout":
            fold.checkouts[event.entity_id] = event.cart_token
        elif event.kind == "order":
            current = fold.orders.get(event.entity_id)
            if (
                current is None
                or current.updated_at is None
                or (event.updated_at >= current.updated_at)
            ):
                fold.orders[event.entity_id] = event
        else:
            fold.refunds.append(event)
    truths: dict[str, StoreTruth] = {}
    for source, fold in folds.items():
        truth = truths[source] = StoreTruth(
            carts_created=len(fold.carts), checkouts_started=len(fold.checkouts)
        )
        converted: set[str] = set()
        counted: set[str] = set()
        for order in fold.orders.values():
            assert order.currency and order.gross_sales is not None
            assert order.discounts is not None and order.created_at is not None
            truth.orders_created += 1
            truth.test_orders += order.test
            truth.cancelled_orders += order.cancelled
            if order.test:
                continue
            cart = order.cart_token
            if order.checkout_token is not None:
                assert fold.checkouts[order.checkout_token] == cart
                truth.checkouts_completed += 1
            if cart is not None and cart in fold.carts:
                converted.add(cart)
                truth.carts_recovered += order.created_at - fold.carts[cart] >= HOUR
            if order.cancelled:
                continue
            counted.add(order.entity_id)
            truth.orders += 1
            code = order.currency
            truth.gross_sales[code] = truth.gross_sales.get(code, Decimal(0)) + order.gross_sales
            truth.discounts[code] = truth.discounts.get(code, Decimal(0)) + order.discounts
        truth.carts_converted = len(converted)
        for refund in fold.refunds:
            assert refund.order_id in fold.orders and refund.currency
            assert refund.refund_amount is not None
            if refund.order_id in counted:
                truth.refunds += 1
                code = refund.currency
                truth.returns[code] = truth.returns.get(code, Decimal(0)) + refund.refund_amount
    return truths


def _same(expected: StoreTruth, actual: StoreTruth) -> None:
    def clean(amounts: dict[str, Decimal]) -> dict[str, Decimal]:
        return {code: amount for code, amount in amounts.items() if amount}

    for name in StoreTruth.__dataclass_fields__:
        mine, theirs = getattr(expected, name), getattr(actual, name)
        if isinstance(mine, dict):
            mine, theirs = clean(mine), clean(theirs)
        assert mine == theirs, name


def test_truth_matches_an_independent_reading_of_the_stream(
    big: tuple[Simulator, list[SimDelivery]],
) -> None:
    sim, deliveries = big
    folded = _fold(deliveries)
    assert folded.keys() == sim.truth.keys()
    for source, truth in sim.truth.items():
        _same(truth, folded[source])


def test_the_funnel_has_realistic_shares(big: tuple[Simulator, list[SimDelivery]]) -> None:
    sim, _ = big
    total = sim.total()
    assert total.carts_created > 1800
    assert 0.60 < total.carts_unconverted / total.carts_created < 0.80  # about 70 % abandoned
    assert 0.38 < total.checkouts_started / total.carts_created < 0.52
    assert 0.55 < total.checkouts_completed / total.checkouts_started < 0.75
    assert 0.05 < total.carts_recovered / total.carts_converted < 0.30
    assert 0.01 < total.test_orders / total.orders_created < 0.06
    assert 0.02 < total.cancelled_orders / total.orders_created < 0.07
    assert 0.04 < total.refunds / total.orders < 0.13
    for code in ("USD", "EUR", "JPY"):
        assert total.gross_sales[code] > total.discounts[code] > 0
        assert total.returns[code] > 0
    assert set(total.gross_sales) == {"USD", "EUR", "JPY"}
    assert all(truth.carts_created > 500 for truth in sim.truth.values())


def test_links_timestamps_and_faults_are_consistent(
    big: tuple[Simulator, list[SimDelivery]],
) -> None:
    _, deliveries = big
    sent: dict[tuple[str, str], bytes] = {}
    carts: set[tuple[str, str]] = set()
    checkouts: dict[tuple[str, str], str | None] = {}
    newest: dict[tuple[str, str], datetime] = {}
    orders: set[tuple[str, str]] = set()
    backdated = late = 0
    for delivery in deliveries:
        key = (delivery.source, delivery.delivery_id)
        if delivery.kind == "retry":
            assert sent[key] == delivery.body  # the same delivery again, byte for byte
            continue
        assert key not in sent
        sent[key] = delivery.body
        if delivery.kind == "unusable":
            continue
        event = normalize(delivery)
        assert event.updated_at is not None and event.created_at is not None
        assert event.created_at <= event.updated_at <= delivery.sent_at + timedelta(seconds=1)
        assert delivery.sent_at - event.updated_at < 3 * HOUR + timedelta(minutes=1)
        entity = (delivery.source, event.entity_id)
        if event.kind == "cart":
            carts.add(entity)
            backdated += delivery.sent_at - event.updated_at >= HOUR
        elif event.kind == "checkout":
            assert (delivery.source, event.cart_token) in carts
            checkouts[entity] = event.cart_token
        elif event.kind == "order":
            if event.checkout_token is not None:
                assert checkouts[(delivery.source, event.checkout_token)] == event.cart_token
            if delivery.topic == "orders/create":
                assert delivery.sent_at - event.created_at < timedelta(seconds=1)
                orders.add(entity)
            if delivery.kind == "stale":
                assert event.updated_at < newest[entity]  # an older version, arriving late
                late += 1
            newest[entity] = max(newest.get(entity, event.updated_at), event.updated_at)
        else:
            assert (delivery.source, event.order_id) in orders
    assert backdated > 100 and late > 20


def test_stores_currencies_and_offsets() -> None:
    assert store_sources("demo", 3) == ("demo", "demo-2", "demo-3")
    sim = simulator(5, sources=store_sources("demo", 3), currencies=("USD", "EUR", "JPY"))
    deliveries = list(take(sim, count=2000))
    assert {d.source for d in deliveries} == {"demo", "demo-2", "demo-3"}
    for delivery in deliveries:
        if delivery.topic == "orders/create":
            body = orjson.loads(delivery.body)
            offset = {"demo": "-05:00", "demo-2": "+01:00", "demo-3": "-08:00"}[delivery.source]
            assert body["created_at"].endswith(offset)
            if body["currency"] == "JPY":
                assert "." not in body["total_line_items_price"]
    assert {code for t in sim.truth.values() for code in t.gross_sales} == {"USD", "EUR", "JPY"}


def test_without_faults_every_delivery_is_fresh_and_current() -> None:
    sim = simulator(9, mix=Mix().without_faults())
    for delivery in stream(sim, 1500):
        assert delivery.kind == "fresh" and not delivery.will_retry
        event = normalize(delivery)
        assert event.updated_at is not None
        assert delivery.sent_at - event.updated_at < timedelta(seconds=1)
    assert sim.counts.fresh == sim.counts.total and sim.total().carts_recovered == 0


# ----------------------------------------------------------------------------- sending


def _recently() -> datetime:
    """A minute ago, to the second: a start the live service clock will not see as future."""
    return (datetime.now(UTC) - timedelta(minutes=1)).replace(microsecond=0)


def _connection(client: TestClient) -> duckdb.DuckDBPyConnection:
    """A cursor on the running app's live database."""
    application = client.app
    assert isinstance(application, FastAPI)
    con: duckdb.DuckDBPyConnection = application.state.service.con.cursor()
    return con


def _db_counts(con: duckdb.DuckDBPyConnection, source: str) -> dict[str, Any]:
    statuses = dict(
        con.execute(
            "SELECT status, count(*) FROM deliveries WHERE source = ? GROUP BY status", [source]
        ).fetchall()
    )
    duplicates = con.execute(
        "SELECT coalesce(sum(count), 0) FROM ingest_counts WHERE source = ? AND outcome = ?",
        [source, "duplicate"],
    ).fetchone()
    kinds = dict(
        con.execute(
            "SELECT kind, count(DISTINCT entity_id) FROM events WHERE source = ? GROUP BY kind",
            [source],
        ).fetchall()
    )
    events = con.execute("SELECT count(*) FROM events WHERE source = ?", [source]).fetchone()
    assert duplicates is not None and events is not None
    return {
        "accepted": statuses.get("accepted", 0),
        "quarantined": statuses.get("quarantined", 0),
        "duplicate": int(duplicates[0]),
        "events": int(events[0]),
        "kinds": kinds,
    }


def test_sending_to_the_real_app_stores_what_the_simulator_reports(
    client: TestClient, clock: FrozenClock
) -> None:
    mix = Mix(duplicate=0.08, out_of_order=0.2, unusable=0.03)
    # The service quarantines events dated ahead of its clock: the shop's "now" is the service's.
    sim = simulator(5, start=clock.now, rate=2000.0, sources=("acme",), mix=mix)
    deliveries = list(take(sim, count=300))
    report = asyncio.run(
        send(
            deliveries,
            secrets={"acme": SECRET},
            url="http://testserver",
            transport=httpx.ASGITransport(app=client.app),
            concurrency=32,
            pace=False,
        )
    )
    expected = Counter(d.expected for d in deliveries)
    assert min(expected.values()) > 0, expected
    assert report.sent == 300 and report.failed == 0 and report.unexpected == 0
    assert (report.stored, report.duplicate, report.quarantined) == (
        expected["stored"],
        expected["duplicate"],
        expected["quarantined"],
    )
    assert report.status_codes == Counter(
        {200: report.stored + report.duplicate, 202: report.quarantined}
    )

    con = _connection(client)
    stored = _db_counts(con, "acme")
    assert stored["accepted"] == report.stored == stored["events"]
    assert stored["quarantined"] == report.quarantined
    assert stored["duplicate"] == report.duplicate
    ids = {row[0] for row in con.execute("SELECT delivery_id FROM deliveries").fetchall()}
    assert ids == {d.delivery_id for d in deliveries}
    reasons = con.execute(
        "SELECT DISTINCT reason FROM deliveries WHERE status = 'quarantined'"
    ).fetchall()
    assert all("total_line_items_price" in row[0] for row in reasons)
    truth = sim.truth["acme"]
    assert stored["kinds"] == {
        "cart": truth.carts_created,
        "checkout": truth.checkouts_started,
        "order": truth.orders_created,
        **({"refund": truth.refunds} if truth.refunds else {}),
    }


def test_503_answers_are_retried_after_retry_after(settings: Settings) -> None:
    crowded = settings.model_copy(update={"queue_max": 1, "retry_after_seconds": 1})
    application = create_app(crowded, {"acme": make_source("acme", "shopify", SECRET)})
    sim = simulator(6, start=_recently(), rate=1000.0, sources=("acme",))
    deliveries = list(take(sim, count=24))
    with TestClient(application) as client:
        report = asyncio.run(
            send(
                deliveries,
                secrets={"acme": SECRET},
                url="http://testserver",
                transport=httpx.ASGITransport(app=client.app),
                concurrency=8,
                pace=False,
                max_retry_after=0.05,
                max_503_retries=1000,
            )
        )
        stored = _db_counts(_connection(client), "acme")
    assert report.retried_503 > 0
    assert report.failed == 0 and report.unexpected == 0 and report.sent == 24
    assert 503 not in report.status_codes
    assert stored["accepted"] == report.stored == sum(d.expected == "stored" for d in deliveries)


def test_stop_ends_a_paced_stream_once_the_queued_deliveries_are_sent(
    client: TestClient, clock: FrozenClock
) -> None:
    sim = simulator(8, start=clock.now, rate=2.0, sources=("acme",), mix=Mix().without_faults())
    deliveries = list(take(sim, count=20))  # one every half second: ten seconds in all

    async def run() -> SendReport:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.7, stop.set)
        return await send(
            deliveries,
            secrets={"acme": SECRET},
            url="http://testserver",
            transport=httpx.ASGITransport(app=client.app),
            stop=stop,
        )

    report = asyncio.run(run())
    assert report.sent == report.stored == 2  # at 0 s and 0.5 s; the one due at 1 s never went
    assert report.elapsed < 5
    stored = _db_counts(_connection(client), "acme")
    assert stored["accepted"] == 2


def test_a_refused_connection_is_counted_and_described_not_raised() -> None:
    sim = simulator(
        9, start=_recently(), rate=1000.0, sources=("acme",), mix=Mix().without_faults()
    )
    deliveries = list(take(sim, count=5))
    nobody = f"http://127.0.0.1:{free_port()}"
    report = asyncio.run(
        send(deliveries, secrets={"acme": SECRET}, url=f"{nobody}, {nobody}", concurrency=2)
    )
    assert report.sent == report.errors == report.failed == 5
    assert report.stored == 0 and not report.status_codes
    assert len(report.failures) == 5
    assert all("ConnectError" in failure for failure in report.failures), report.failures
    described = {failure.split()[1].rstrip(":") for failure in report.failures}
    assert described == {d.delivery_id for d in deliveries}


@pytest.mark.slow
def test_cli_against_a_running_service(tmp_path: Path) -> None:
    runner = CliRunner()
    start = _recently()
    service = ServiceProcess.for_sources(
        tmp_path, {"shop": ("shopify", "s-1"), "shop-2": ("shopify", "s-1")}
    )
    options = "--source shop --stores 2 --count 100 --rate 1000 --seed 3 --currencies USD,EUR"
    args = ["simulate", "--config", str(service.config), "--start", start.isoformat()]
    args += [*options.split(), "--concurrency", "8"]
    with service:
        result = runner.invoke(app, [*args, "--url", service.base_url])
        assert result.exit_code == 0, result.output
        assert "200 stored" in result.output and "carts created" in result.output
        wrong = runner.invoke(
            app,
            [
                "simulate",
                "--url",
                service.base_url,
                "--source",
                "shop",
                "--secret",
                "not-it",
                "--count",
                "3",
                "--seed",
                "4",
            ],
        )
        assert wrong.exit_code == 1, wrong.output
        assert "401" in wrong.output
    sim = simulator(
        3, start=start, rate=1000.0, sources=("shop", "shop-2"), currencies=("USD", "EUR")
    )
    deliveries = list(take(sim, count=100))
    con = duckdb.connect(str(service.db), read_only=True)
    try:
        for source in ("shop", "shop-2"):
            mine = [d for d in deliveries if d.source == source]
            stored = _db_counts(con, source)
            assert stored["accepted"] == sum(d.expected == "stored" for d in mine)
            assert stored["quarantined"] == sum(d.expected == "quarantined" for d in mine)
            assert stored["duplicate"] == sum(d.expected == "duplicate" for d in mine)
            assert stored["kinds"]["cart"] == sim.truth[source].carts_created
    finally:
        con.close()


def test_cli_refuses_contradictory_options() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["simulate", "--source", "a", "--source", "b", "--stores", "3"])
    assert result.exit_code == 2 and "does not match" in result.output
    result = runner.invoke(app, ["simulate", "--secret", "x", "--currencies", "usd1"])
    assert result.exit_code == 2 and "ISO 4217" in result.output
