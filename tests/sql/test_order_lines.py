"""Products and line items: `order_lines`, orders' display names and checkouts' values, from the
simulator's traffic and the platforms' real payloads, through the real app and publisher."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import httpx
import pytest
from fastapi.testclient import TestClient

from shoppulse.publish.publisher import Publisher
from shoppulse.service import create_app
from shoppulse.settings import Settings
from shoppulse.simulator import SimulationConfig, Simulator, send, take
from tests.conftest import SECRET, FrozenClock, fixture_bytes, make_source, signed_post
from tests.sql.test_publish import publish, rows

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Two stores' simulated Shopify traffic in two currencies (discounts, cancellations, test
    orders, refunds), stored, folded two hours after it started, and published."""
    db_path = tmp_path_factory.mktemp("lines") / "data" / "shoppulse.duckdb"
    settings = Settings(db_path=db_path, batch_linger_ms=0.5, publish_interval_seconds=3600)
    stores = ("north", "south")
    sources = {s: make_source(s, "shopify", SECRET) for s in stores}
    sim = Simulator(
        SimulationConfig(seed=5, start=START, rate=50.0, sources=stores, currencies=("USD", "JPY"))
    )
    deliveries = [*take(sim, count=1500), *sim.drain()]
    app = create_app(settings, sources, clock=FrozenClock(START + timedelta(hours=2)))
    with TestClient(app) as client:
        report = asyncio.run(
            send(
                deliveries,
                secrets=dict.fromkeys(stores, SECRET),
                url="http://testserver",
                transport=httpx.ASGITransport(app=client.app),
                concurrency=8,
                pace=False,
            )
        )
        assert report.failed == 0 and report.unexpected == 0
        publish(client)
    yield db_path


def test_counted_lines_sum_to_the_gross_sales_of_the_metrics(simulated: Path) -> None:
    by_lines = rows(
        simulated,
        "SELECT source, currency, sum(gross_sales) FROM order_lines WHERE counted "
        "GROUP BY ALL ORDER BY ALL",
    )
    by_metrics = rows(
        simulated,
        "SELECT source, currency, sum(gross_sales) FROM sales_by_day GROUP BY ALL ORDER BY ALL",
    )
    assert by_lines == by_metrics
    assert {r[1] for r in by_lines} == {"USD", "JPY"} and all(r[2] > 0 for r in by_lines)
    # Order by order, too, counted or not: every order has its lines.
    assert (
        rows(
            simulated,
            "SELECT count(*), count(*) FILTER (o.gross_sales IS DISTINCT FROM l.gross), "
            "count(*) FILTER (NOT o.counted) FROM orders o LEFT JOIN (SELECT source, order_id, "
            "sum(gross_sales) AS gross FROM order_lines GROUP BY ALL) l "
            "ON l.source = o.source AND l.order_id = o.id",
        )[0][1]
        == 0
    )


def test_lines_carry_products_and_discounts_and_orders_their_names(simulated: Path) -> None:
    [(lines, products, skus, titles, discounted, discounts)] = rows(
        simulated,
        "SELECT count(*), count(DISTINCT product_id), count(sku), count(title), "
        "count(*) FILTER (line_discount > 0), sum(line_discount) FROM order_lines WHERE counted",
    )
    assert lines > 100 and products > 3 and skus == titles == lines
    assert 0 < discounted < lines
    # Line discounts are the order discounts the simulator allocates to lines.
    assert discounts == rows(simulated, "SELECT sum(discounts) FROM orders WHERE counted")[0][0]
    names = rows(simulated, "SELECT count(*), count(name), count(DISTINCT name) FROM orders")
    assert names[0][0] == names[0][1] > 0
    assert rows(simulated, "SELECT name FROM orders ORDER BY created_at LIMIT 1")[0][0][0] == "#"
    top = rows(
        simulated,
        "SELECT product_id, sum(gross_sales - line_discount) AS revenue FROM order_lines "
        "WHERE counted AND currency = 'USD' GROUP BY product_id ORDER BY revenue DESC LIMIT 3",
    )
    assert len(top) == 3 and top[0][1] >= top[1][1] >= top[2][1] > 0


def test_abandoned_checkouts_show_their_value(simulated: Path) -> None:
    [(abandoned, valued, currencies)] = rows(
        simulated,
        "SELECT count(*), count(value), count(DISTINCT currency) FROM checkouts "
        "WHERE fate = 'abandoned'",
    )
    assert abandoned > 0 and valued == abandoned and currencies == 2
    assert rows(simulated, "SELECT min(value) FROM checkouts")[0][0] > 0


def test_the_platforms_own_payloads(db_path: Path) -> None:
    settings = Settings(db_path=db_path, batch_linger_ms=0.5, publish_interval_seconds=3600)
    sources = {
        "shop": make_source("shop", "shopify", SECRET),
        "woo": make_source("woo", "woocommerce", SECRET),
    }
    with TestClient(create_app(settings, sources, clock=FrozenClock())) as client:
        for source, provider, name, topic in (
            ("shop", "shopify", "orders_create.json", "orders/create"),
            ("woo", "woocommerce", "order.updated.json", "order.updated"),
        ):
            response = signed_post(
                client,
                source,
                provider,
                fixture_bytes(provider, name),
                topic=topic,
                delivery_id=name,
            )
            assert response.status_code == 200, response.text
        publish(client)
    # Shopify's sample order is a test order, and cancelled: its lines are there, not counted.
    assert rows(
        db_path,
        "SELECT source, order_name, count(*), sum(gross_sales), bool_or(counted), bool_and(test), "
        "bool_and(cancelled) FROM order_lines GROUP BY ALL ORDER BY ALL",
    ) == [
        ("shop", "#9999", 5, Decimal("414.9500"), False, True, True),
        ("woo", "#727", 2, Decimal("18.0000"), True, False, False),
    ]
    assert rows(db_path, "SELECT sum(gross_sales) FROM order_lines WHERE counted") == rows(
        db_path, "SELECT sum(gross_sales) FROM sales_by_day"
    )
    assert rows(
        db_path, "SELECT title, sku, variant_id FROM order_lines WHERE line = 2 ORDER BY source"
    ) == [
        ("Lens Protection Plan (2 Year)", "LENS-PROTECT-2YR", None),
        ("Ship Your Idea \u2013 Color: Black, Size: M Test", "Bar3", "23"),
    ]


def test_a_published_dataset_without_the_new_columns_is_published_again_whole(
    simulated: Path, tmp_path: Path
) -> None:
    """An upgrade: the orders and checkouts files of an older version lack names, lines and
    values; the first publish after it writes those datasets anew."""
    db_path = tmp_path / "data" / "shoppulse.duckdb"
    Path(db_path.parent).mkdir()
    import shutil

    shutil.copytree(simulated.parent, db_path.parent, dirs_exist_ok=True)
    root = db_path.parent / "analytics"
    with duckdb.connect() as con:
        for dataset, dropped in (("orders", "name, lines"), ("checkouts", "currency, value")):
            for file in root.glob(f"{dataset}/day=*/*.parquet"):
                con.execute(
                    f"COPY (SELECT * EXCLUDE ({dropped}) FROM read_parquet('{file}')) "
                    f"TO '{file}.old' (FORMAT parquet)"
                )
                Path(f"{file}.old").replace(file)
    live = duckdb.connect(str(db_path), read_only=True)
    try:
        publisher = Publisher(live, db_path)
        report = publisher.publish()
        publisher.close()
    finally:
        live.close()
    assert report.changed
    assert rows(db_path, "SELECT count(*), count(name) FROM orders") == rows(
        simulated, "SELECT count(*), count(name) FROM orders"
    )
    assert rows(db_path, "SELECT sum(gross_sales) FROM order_lines") == rows(
        simulated, "SELECT sum(gross_sales) FROM order_lines"
    )
    assert rows(db_path, "SELECT count(value) FROM checkouts") == rows(
        simulated, "SELECT count(value) FROM checkouts"
    )
