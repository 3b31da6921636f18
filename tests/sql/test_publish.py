"""The publisher through the real app: what the views show, and what each cycle rewrites."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
from fastapi.testclient import TestClient

from ingest.sources import Source
from shoppulse.publish.catalog import catalog_path
from shoppulse.publish.publisher import Publisher, PublishReport
from shoppulse.publish.worker import PublishWorker
from shoppulse.service import create_app
from shoppulse.settings import Settings
from shoppulse.sql import open_catalog
from tests.conftest import FrozenClock, signed_post
from tests.helpers.app import figures, service_of, state_of
from tests.metrics.shop import WEEK, Shop

T0 = datetime(2026, 1, 10, 9, 0, tzinfo=UTC)


@pytest.fixture
def settings(db_path: Path) -> Settings:
    # The thread publishes rarely: the tests publish by hand and look at each cycle.
    return Settings(db_path=db_path, batch_linger_ms=0.5, publish_interval_seconds=3600)


@pytest.fixture
def app_client(
    settings: Settings, sources: dict[str, Source], clock: FrozenClock
) -> Iterator[TestClient]:
    clock.now = T0 + timedelta(days=1)
    with TestClient(create_app(settings, sources, clock=clock)) as client:
        yield client


def publisher(client: TestClient) -> Publisher:
    worker: PublishWorker = state_of(client).publish_worker
    return worker.publisher


def publish(client: TestClient) -> PublishReport:
    """Fold what is stored, write the state tables (the engine does it every few seconds),
    then run one publish cycle."""
    service_of(client).worker.fold_now()
    service_of(client).worker.write_state_now()
    return publisher(client).publish()


def rows(db_path: Path, sql: str) -> list[tuple[Any, ...]]:
    con = open_catalog(catalog_path(db_path))
    try:
        return con.sql(sql).fetchall()
    finally:
        con.close()


def files(client: TestClient, dataset: str) -> set[str]:
    return set(publisher(client).files(dataset))


def test_views_agree_with_the_api(app_client: TestClient, db_path: Path) -> None:
    shop = Shop(app_client)
    shop.cart("c1", T0)
    shop.cart("c2", T0 + timedelta(minutes=1))
    shop.checkout("k1", "c1", T0 + timedelta(minutes=2))
    shop.order("o1", T0 + timedelta(minutes=5), gross="100.00", discounts="10.00", cart_token="c1")
    shop.order("o2", T0 + timedelta(minutes=7), gross="33.33", discounts="0.00")
    shop.order("o3", T0 + timedelta(minutes=8), gross="10.00", test=True)
    shop.order("o4", T0 + timedelta(minutes=9), gross="20.00")
    shop.order(
        "o4",
        T0 + timedelta(minutes=9),
        gross="20.00",
        cancelled=True,
        updated=T0 + timedelta(minutes=30),
        topic="orders/cancelled",
    )
    shop.refund("r1", "o1", T0 + timedelta(hours=3), ["5.00", "2.50"])
    api = figures(app_client, **WEEK)
    publish(app_client)

    (orders, gross, discounts, returns, net) = rows(
        db_path,
        "SELECT sum(orders), sum(gross_sales), sum(discounts), sum(returns), sum(net_sales) "
        "FROM sales_by_day",
    )[0]
    assert orders == api["orders"] == 2
    assert gross == Decimal(api["gross_sales"]) == Decimal("133.33")
    assert discounts == Decimal(api["discounts"])
    assert returns == Decimal(api["returns"]) == Decimal("7.50")
    assert net == Decimal(api["net_sales"])
    day_aov = rows(db_path, "SELECT aov FROM sales_by_day")[0][0]
    assert day_aov == Decimal(api["aov"]) == Decimal("61.6650")
    assert isinstance(day_aov, Decimal)
    funnel = rows(
        db_path,
        "SELECT sum(carts_created), sum(carts_converted), sum(carts_abandoned), sum(carts_open), "
        "sum(checkouts_started), sum(checkouts_completed) FROM funnel_by_hour",
    )[0]
    assert funnel == (
        api["carts_created"],
        api["carts_converted"],
        api["carts_abandoned"],
        api["carts_open"],
        api["checkouts_started"],
        api["checkouts_completed"],
    )
    counted = rows(db_path, "SELECT id FROM orders WHERE counted ORDER BY id")
    assert counted == [("o1",), ("o2",)]
    assert rows(db_path, "SELECT count(*) FROM events")[0][0] == 9
    assert rows(db_path, "SELECT reason, amount FROM refunds") == [
        ("Things were damaged", Decimal("7.5000"))
    ]
    values = dict(rows(db_path, "SELECT id, value FROM carts"))
    assert values == {"c1": Decimal("59.9700"), "c2": Decimal("59.9700")}


def test_a_cycle_publishes_the_folds_whose_state_is_written(
    app_client: TestClient, db_path: Path, clock: FrozenClock
) -> None:
    """The engine keeps recent state in memory: a cycle publishes entity state and aggregates
    as of the last fold whose state is written, so that the two agree."""
    service = service_of(app_client)
    shop = Shop(app_client)
    shop.order("o1", T0, gross="10.00")
    publish(app_client)
    first_fold_at = service.clock()
    service.worker.engine.state_write_seconds = 3600.0
    clock.now += timedelta(minutes=1)  # o2 arrives and is folded a minute later
    shop.order("o2", T0, gross="5.00")  # the same minute as o1
    service.worker.fold_now()
    assert figures(app_client, **WEEK)["orders"] == 2  # the API reads the live aggregates
    publisher(app_client).publish()
    assert rows(db_path, "SELECT sum(orders), sum(gross_sales) FROM sales_by_minute")[0] == (
        1,
        Decimal("10.00"),
    )
    assert rows(db_path, "SELECT id FROM orders") == [("o1",)]
    published_fold, as_of, watermark = rows(
        db_path, "SELECT fold_seq, metrics_as_of, watermark FROM publish_info"
    )[0]
    assert published_fold < service.worker.engine.store.cursor().fold_seq
    # Of the published fold, not of the newest: its watermark is o1's arrival. (An empty timer
    # fold between the two may be the published one: then its time is a minute later.)
    assert watermark == first_fold_at
    assert first_fold_at <= as_of <= service.clock()
    service.worker.write_state_now()
    publisher(app_client).publish()
    assert rows(db_path, "SELECT sum(orders), sum(gross_sales) FROM sales_by_minute")[0] == (
        2,
        Decimal("15.00"),
    )
    assert rows(db_path, "SELECT id FROM orders ORDER BY id") == [("o1",), ("o2",)]
    as_of, watermark = rows(db_path, "SELECT metrics_as_of, watermark FROM publish_info")[0]
    assert as_of == watermark == clock.now


def test_a_cycle_rewrites_only_what_changed(app_client: TestClient, db_path: Path) -> None:
    shop = Shop(app_client)
    for day in range(5):
        shop.order(f"o{day}", T0 - timedelta(days=day), gross="10.00")
    publish(app_client)
    before = files(app_client, "orders")
    assert len(before) == 5  # one file per created day
    events_before = files(app_client, "events")

    # A late update of a four-day-old order touches that day only.
    shop.order("o4", T0 - timedelta(days=4), gross="12.00", updated=T0, topic="orders/updated")
    report = publish(app_client)
    after = files(app_client, "orders")
    assert len(before - after) == 1 and len(after - before) == 1
    (replaced,) = before - after
    assert "day=2026-01-06" in replaced
    assert events_before <= files(app_client, "events")  # old parts stay, one part is added
    assert report.rows_written < 10
    assert rows(db_path, "SELECT gross_sales FROM orders WHERE id = 'o4'") == [
        (Decimal("12.0000"),)
    ]

    # Nothing new: no file written, the catalog stays.
    catalog = catalog_path(db_path)
    inode = catalog.stat().st_ino
    report = publish(app_client)
    assert report.files_written == 0 and catalog.stat().st_ino == inode


def test_an_entity_whose_day_changes_appears_once(app_client: TestClient, db_path: Path) -> None:
    shop = Shop(app_client)
    shop.cart("c1", T0)
    publish(app_client)
    assert rows(db_path, "SELECT count(*) FROM carts")[0][0] == 1
    # A newer version says the cart was created two days earlier: it moves to that day.
    shop.cart("c1", T0 - timedelta(days=2), updated=T0 + timedelta(minutes=1), topic="carts/update")
    publish(app_client)
    assert rows(db_path, "SELECT id, created_at FROM carts") == [("c1", T0 - timedelta(days=2))]
    assert not any("day=2026-01-10" in f for f in files(app_client, "carts"))


def test_a_replayed_quarantined_delivery_shows_its_new_status(
    app_client: TestClient, db_path: Path
) -> None:
    shop = Shop(app_client)
    shop.order("o1", T0)
    body = orjson.dumps({"id": 99, "created_at": T0.isoformat()})  # no amounts: quarantined
    response = signed_post(
        app_client, "acme", "shopify", body, topic="orders/create", delivery_id="bad-1"
    )
    assert response.status_code == 202
    publish(app_client)
    quarantined = rows(db_path, "SELECT delivery_id, reason FROM quarantine")
    assert [q[0] for q in quarantined] == ["bad-1"] and quarantined[0][1]
    columns = [r[0] for r in rows(db_path, "DESCRIBE deliveries")]
    assert "body" not in columns and "headers" not in columns  # personal data stays home

    # A replay (on the writer thread, as replays run) accepts it.
    service = service_of(app_client)
    done: list[bool] = []

    def accept(con: duckdb.DuckDBPyConnection) -> None:
        con.execute(
            "UPDATE deliveries SET status = 'accepted', reason = NULL WHERE delivery_id = 'bad-1'"
        )
        done.append(True)

    service.writer.run_job(accept)
    deadline = datetime.now(UTC) + timedelta(seconds=10)
    while not done and datetime.now(UTC) < deadline:
        pass
    assert done
    publish(app_client)
    assert rows(db_path, "SELECT count(*) FROM quarantine")[0][0] == 0
    assert rows(db_path, "SELECT status FROM deliveries WHERE delivery_id = 'bad-1'") == [
        ("accepted",)
    ]
    assert rows(db_path, "SELECT count(*) FROM deliveries")[0][0] == 2


def test_small_parts_are_compacted_and_old_files_kept_for_the_grace_period(
    app_client: TestClient, db_path: Path
) -> None:
    shop = Shop(app_client)
    pub = publisher(app_client)
    now = [1000.0]
    pub.clock = lambda: now[0]
    pub.grace_seconds = 60
    pub.fanout = 3
    first_files: set[str] = set()
    for n in range(8):
        shop.order(f"o{n}", T0 + timedelta(minutes=n))
        publish(app_client)
        if n == 0:
            first_files = files(app_client, "events")
    parts = files(app_client, "events")
    assert len(parts) < 4, parts  # 8 cycles, merged in runs of 3
    assert rows(db_path, "SELECT count(*), count(DISTINCT event_seq) FROM events")[0] == (8, 8)
    assert not first_files & parts
    # Replaced files are still on disk (a query on an older catalog may read them) ...
    assert all(Path(f).exists() for f in first_files)
    # ... until the grace period is over.
    now[0] += 61
    report = pub.publish()
    assert report.files_deleted > 0
    assert not any(Path(f).exists() for f in first_files)
    assert rows(db_path, "SELECT count(*) FROM events")[0][0] == 8


def test_a_connection_keeps_its_snapshot_and_a_new_one_sees_new_data(
    app_client: TestClient, db_path: Path
) -> None:
    shop = Shop(app_client)
    shop.order("o1", T0)
    publish(app_client)
    reader = duckdb.connect(str(catalog_path(db_path)), read_only=True)  # the stock way
    try:
        shop.order("o2", T0)
        publish(app_client)
        assert reader.sql("SELECT count(*) FROM orders").fetchall() == [(1,)]
        assert rows(db_path, "SELECT count(*) FROM orders") == [(2,)]
    finally:
        reader.close()


def test_aov_by_day_is_rounded_half_even_to_each_currencys_minor_units(
    app_client: TestClient, db_path: Path
) -> None:
    shop = Shop(app_client)
    for n, gross in enumerate(("500.00", "300.00", "200.00")):  # 1,000.00 over 3 orders
        shop.order(f"u{n}", T0, gross=gross, currency="USD")
    shop.order("u3", T0 + timedelta(days=1), gross="10.03", currency="USD")
    shop.order("u4", T0 + timedelta(days=1), gross="10.00", currency="USD")  # 10.015: even
    for n, gross in enumerate(("5000", "5000", "1")):  # 10,001 over 3 orders
        shop.order(f"j{n}", T0, gross=gross, currency="JPY")
    shop.order("k1", T0, gross="1.2345", currency="KWD")
    shop.order("k2", T0, gross="1.0000", currency="KWD")  # 1.11725
    shop.order("t1", T0, gross="99.00", currency="USD", test=True)  # not counted
    publish(app_client)
    assert rows(
        db_path,
        "SELECT day::VARCHAR, currency, orders, aov, minor_units FROM aov_by_day ORDER BY ALL",
    ) == [
        ("2026-01-10", "JPY", 3, Decimal("3334.0000"), 0),
        ("2026-01-10", "KWD", 2, Decimal("1.1170"), 3),
        ("2026-01-10", "USD", 3, Decimal("333.3300"), 2),
        ("2026-01-11", "USD", 2, Decimal("10.0200"), 2),
    ]
    # The 4-place figure of sales_by_day is unchanged.
    assert rows(db_path, "SELECT aov FROM sales_by_day WHERE currency = 'USD' ORDER BY day") == [
        (Decimal("333.3333"),),
        (Decimal("10.0150"),),
    ]


def test_metric_history_answers_as_of_and_restatements_like_the_api(
    app_client: TestClient, db_path: Path, clock: FrozenClock
) -> None:
    """`metric_history`: the aggregate changes with their fold time and cause answer the API's
    questions in SQL (the figures as of a moment, a day's restatement by cause)."""
    shop = Shop(app_client)
    day = T0.replace(hour=0)
    clock.now = day + timedelta(hours=12)
    shop.order("A", day + timedelta(hours=9), gross="100.00")
    shop.order("B", day + timedelta(hours=10), gross="50.00")
    figures(app_client)
    publish(app_client)
    clock.now = day + timedelta(days=1, hours=1)
    shop.order(
        "B",
        day + timedelta(hours=10),
        gross="50.00",
        cancelled=True,
        updated=clock.now,
        topic="orders/cancelled",
    )
    shop.cart("late-cart", day + timedelta(hours=23, minutes=30))
    figures(app_client)
    publish(app_client)

    closed = day + timedelta(days=1)
    [(first, now)] = rows(
        db_path,
        "SELECT sum(value) FILTER (WHERE folded_at <= "
        f"'{closed.isoformat()}'::TIMESTAMPTZ), sum(value) FROM metric_history "
        f"WHERE metric = 'net_sales' AND minute >= '{day.isoformat()}'::TIMESTAMPTZ "
        f"AND minute < '{closed.isoformat()}'::TIMESTAMPTZ",
    )
    assert (first, now) == (Decimal("150.0000"), Decimal("100.0000"))
    causes = rows(
        db_path,
        "SELECT metric, cause, sum(value) FROM metric_history "
        f"WHERE folded_at > '{closed.isoformat()}'::TIMESTAMPTZ GROUP BY ALL ORDER BY ALL",
    )
    assert [(m, c, str(v)) for m, c, v in causes if m in ("net_sales", "carts_created")] == [
        ("carts_created", "delivery", "1.0000"),
        ("net_sales", "cancellation", "-50.0000"),
    ]
    api = app_client.get(
        "/api/v1/metrics/restatements",
        params={"from": day.isoformat(), "to": closed.isoformat(), "grain": "day"},
    ).json()
    [restated] = api["buckets"]
    assert (restated["first_reported"], restated["now"]) == ("150.00", "100.00")
    # Every change is published once: the history adds up to the published aggregates.
    [(history, aggregates)] = rows(
        db_path,
        "SELECT (SELECT sum(value) FROM metric_history WHERE metric = 'net_sales'), "
        "(SELECT sum(net_sales) FROM sales_by_minute)",
    )
    assert history == aggregates == Decimal("100.0000")
