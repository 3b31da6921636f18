"""Hand-computed figures for the cases the metric definitions single out, through the real app."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from ingest.sources import Source
from shoppulse.service import create_app
from shoppulse.settings import Settings
from tests.conftest import FrozenClock, fixture_bytes, make_source, signed_post
from tests.helpers.app import figures, service_of
from tests.metrics.shop import WEEK, Shop, differences

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0 + timedelta(minutes=5))


@pytest.fixture
def sources() -> dict[str, Source]:
    from tests.conftest import OTHER_SECRET, SECRET

    return {
        "acme": make_source("acme", "shopify", SECRET, OTHER_SECRET),
        "beta": make_source("beta", "shopify", SECRET),
    }


@pytest.fixture
def shop(client: TestClient) -> Iterator[Shop]:
    yield Shop(client)
    assert differences(client) == []  # every case also equals the full recompute


def test_order_with_discounts(client: TestClient, shop: Shop) -> None:
    shop.order("1001", T0, gross="120.00", discounts="15.00")
    f = figures(client, **WEEK)
    assert f["orders"] == 1
    assert (f["gross_sales"], f["discounts"], f["returns"]) == ("120.00", "15.00", "0.00")
    assert f["net_sales"] == "105.00"
    assert f["aov"] == "105.00"
    assert f["currency"] == "USD"


def test_aov_over_several_orders_is_exact(client: TestClient, shop: Shop) -> None:
    for i, gross in enumerate(["10.00", "10.00", "10.01"]):
        shop.order(f"o{i}", T0, gross=gross)
    f = figures(client, **WEEK)
    assert f["gross_sales"] == "30.01"
    assert f["aov"] == "10.0033"  # 30.01 / 3, to four places, not a float


def test_real_fixture_test_order_is_not_counted(client: TestClient, shop: Shop) -> None:
    body = fixture_bytes("shopify", "orders_create.json")  # test: true, cancelled
    signed_post(client, "acme", "shopify", body, topic="orders/create", delivery_id="fx")
    f = figures(client, **WEEK)
    assert f["orders"] == 0 and f["gross_sales"] is None and f["aov"] is None


def test_cancellation_removes_the_order_and_uncancel_restores_it(
    client: TestClient, shop: Shop
) -> None:
    shop.order("2001", T0, gross="50.00")
    assert figures(client, **WEEK)["orders"] == 1
    shop.order(
        "2001",
        T0,
        gross="50.00",
        cancelled=True,
        updated=T0 + timedelta(hours=1),
        topic="orders/cancelled",
    )
    f = figures(client, **WEEK)
    assert f["orders"] == 0 and f["by_currency"] == []
    shop.order("2001", T0, gross="50.00", updated=T0 + timedelta(hours=2), topic="orders/updated")
    assert figures(client, **WEEK)["orders"] == 1


def test_refund_is_dated_by_its_creation_and_leaves_aov(client: TestClient, shop: Shop) -> None:
    shop.order("3001", T0, gross="100.00")
    next_day = T0 + timedelta(days=1)
    shop.refund("r1", "3001", next_day, ["20.00", "10.00"])
    f = figures(client, **WEEK)
    assert (f["returns"], f["net_sales"], f["aov"]) == ("30.00", "70.00", "100.00")
    order_day = figures(
        client, **{"from": T0.isoformat(), "to": (T0 + timedelta(hours=1)).isoformat()}
    )
    assert order_day["returns"] == "0.00" and order_day["orders"] == 1
    refund_day = figures(
        client, **{"from": next_day.isoformat(), "to": (next_day + timedelta(hours=1)).isoformat()}
    )
    assert refund_day["orders"] == 0 and refund_day["returns"] == "30.00"
    assert refund_day["net_sales"] == "-30.00"


def test_refund_before_its_order_counts_once_the_order_arrives(
    client: TestClient, shop: Shop
) -> None:
    shop.refund("r9", "3009", T0 + timedelta(hours=1), ["5.00"])
    assert figures(client, **WEEK)["returns"] is None
    shop.order("3009", T0, gross="40.00")
    assert figures(client, **WEEK)["returns"] == "5.00"


def test_refund_of_a_cancelled_or_test_order_is_not_a_return(
    client: TestClient, shop: Shop
) -> None:
    shop.order("4001", T0, gross="40.00", test=True)
    shop.refund("r2", "4001", T0, ["40.00"])
    shop.order("4002", T0, gross="40.00")
    shop.refund("r3", "4002", T0, ["10.00"])
    assert figures(client, **WEEK)["returns"] == "10.00"
    shop.order(
        "4002",
        T0,
        gross="40.00",
        cancelled=True,
        updated=T0 + timedelta(minutes=1),
        topic="orders/cancelled",
    )
    assert figures(client, **WEEK)["returns"] is None


def test_deleted_order_is_not_counted(client: TestClient, shop: Shop) -> None:
    shop.order("5001", T0, gross="70.00")
    shop.delete_order("5001")
    assert figures(client, **WEEK)["orders"] == 0


def test_stale_version_arriving_late_does_not_overwrite(client: TestClient, shop: Shop) -> None:
    shop.order(
        "6001", T0, gross="200.00", updated=T0 + timedelta(minutes=30), topic="orders/updated"
    )
    shop.order("6001", T0, gross="100.00", updated=T0)  # the older version, delivered late
    f = figures(client, **WEEK)
    assert (f["orders"], f["gross_sales"]) == (1, "200.00")


def test_order_stays_in_the_bucket_of_its_earliest_creation_time(
    client: TestClient, shop: Shop
) -> None:
    """A later version with a later created_at, folded separately, does not move the order."""
    earlier = T0 - timedelta(days=2)
    shop.order("6101", earlier, gross="40.00")
    assert figures(client, **WEEK)["orders"] == 1  # folded: the order is in its first day
    shop.order("6101", T0, gross="40.00", updated=T0, topic="orders/updated")
    assert figures(client, **WEEK)["orders"] == 1
    series = client.get(
        "/api/v1/metrics/timeseries", params={"metric": "orders", "grain": "day", **WEEK}
    ).json()
    counted = [p["bucket"][:10] for p in series["points"] if p["value"] not in (0, None)]
    assert counted == [earlier.date().isoformat()]


def test_duplicate_delivery_counts_once(client: TestClient, shop: Shop) -> None:
    shop.order("7001", T0, gross="10.00", delivery_id="same")
    shop.order("7001", T0, gross="10.00", delivery_id="same")
    shop.order("7001", T0, gross="10.00", delivery_id="other")  # same version, new delivery
    assert figures(client, **WEEK)["orders"] == 1


def test_several_currencies_are_never_summed(client: TestClient, shop: Shop) -> None:
    shop.order("8001", T0, gross="10.00", currency="USD")
    shop.order("8002", T0, gross="20.00", currency="EUR")
    f = figures(client, **WEEK)
    assert f["orders"] == 2
    assert f["currency"] is None and f["gross_sales"] is None and f["aov"] is None
    by = {c["currency"]: c for c in f["by_currency"]}
    assert by["EUR"]["gross_sales"] == "20.00" and by["USD"]["gross_sales"] == "10.00"
    assert by["EUR"]["aov"] == "20.00"


def test_cart_converts_through_its_checkout(client: TestClient, shop: Shop) -> None:
    shop.cart("cartA", T0)
    shop.checkout("coA", "cartA", T0 + timedelta(minutes=2))
    shop.order("9001", T0 + timedelta(minutes=4), checkout_token="coA")
    f = figures(client, **WEEK)
    assert (f["carts_created"], f["carts_converted"], f["carts_open"]) == (1, 1, 0)
    assert (f["checkouts_started"], f["checkouts_completed"]) == (1, 1)
    assert f["cart_conversion_rate"] == 1.0 and f["checkout_conversion_rate"] == 1.0
    assert f["provisional"] is False


def test_cart_abandoned_then_recovered(client: TestClient, clock: FrozenClock, shop: Shop) -> None:
    shop.cart("cartB", T0)
    shop.cart("cartC", T0)
    f = figures(client, **WEEK)
    assert (f["carts_open"], f["carts_abandoned"], f["provisional"]) == (2, 0, True)
    clock.now = T0 + timedelta(minutes=60)  # the timeout passes with no new event
    f = figures(client, **WEEK)
    assert (f["carts_open"], f["carts_abandoned"]) == (0, 2)
    assert f["cart_abandonment_rate"] == 1.0
    shop.order("9101", clock.now, cart_token="cartB")  # a late order recovers cartB
    f = figures(client, **WEEK)
    assert (f["carts_converted"], f["carts_abandoned"]) == (1, 1)
    assert f["cart_conversion_rate"] == 0.5 and f["cart_abandonment_rate"] == 0.5


def test_cancellation_does_not_undo_a_conversion(client: TestClient, shop: Shop) -> None:
    shop.cart("cartD", T0)
    shop.order("9201", T0, cart_token="cartD")
    shop.order(
        "9201",
        T0,
        cart_token="cartD",
        cancelled=True,
        updated=T0 + timedelta(minutes=1),
        topic="orders/cancelled",
    )
    f = figures(client, **WEEK)
    assert (f["orders"], f["carts_converted"]) == (0, 1)


def test_test_order_does_not_convert(client: TestClient, clock: FrozenClock, shop: Shop) -> None:
    shop.checkout("coT", None, T0)
    shop.order("9301", T0, checkout_token="coT", test=True)
    clock.now = T0 + timedelta(minutes=10)
    f = figures(client, **WEEK)
    assert (f["checkouts_completed"], f["checkouts_abandoned"]) == (0, 1)


def test_activity_reopens_an_abandoned_cart(
    client: TestClient, clock: FrozenClock, shop: Shop
) -> None:
    shop.cart("cartE", T0)
    clock.now = T0 + timedelta(hours=2)
    assert figures(client, **WEEK)["carts_abandoned"] == 1
    shop.cart("cartE", T0, updated=clock.now - timedelta(minutes=1), topic="carts/update")
    f = figures(client, **WEEK)
    assert (f["carts_abandoned"], f["carts_open"]) == (0, 1)


def test_source_filter(client: TestClient, shop: Shop) -> None:
    shop.order("1", T0, gross="10.00")
    Shop(client, "beta").order("1", T0, gross="30.00")
    assert figures(client, **WEEK)["orders"] == 2
    assert figures(client, source="beta", **WEEK)["gross_sales"] == "30.00"


def test_figures_survive_a_restart(
    settings: Settings, sources: dict[str, Source], clock: FrozenClock
) -> None:
    with TestClient(create_app(settings, sources, clock=clock)) as client:
        Shop(client).order("1", T0, gross="10.00")
        before = figures(client, **WEEK)
    with TestClient(create_app(settings, sources, clock=clock)) as client:
        Shop(client).order("2", T0, gross="5.00", delivery_id="acme-99")
        after = figures(client, **WEEK)
        assert differences(client) == []
    assert before["orders"] == 1 and after["orders"] == 2 and after["gross_sales"] == "15.00"


def test_compaction_merges_old_folds_per_hour_and_keeps_every_figure(
    client: TestClient, shop: Shop, clock: FrozenClock
) -> None:
    for version in range(5):  # five folds, a minute apart, that touch the same minute bucket
        shop.order(
            "c1",
            T0,
            gross=f"{10 + version}.00",
            updated=T0 + timedelta(minutes=version),
            topic="orders/updated",
        )
        figures(client, **WEEK)
        clock.now += timedelta(minutes=1)
    service = service_of(client)
    con = service.con.cursor()

    def change_rows() -> int:
        return int(con.execute("SELECT count(*) FROM metrics_sales_deltas").fetchall()[0][0])

    service.worker.write_state_now()
    assert change_rows() == 5
    assert service.worker.compact_now() == 0  # within the per-fold period: every fold is kept
    clock.now += timedelta(days=8)
    # Compaction merges the changes of folds whose entity state is written (the publisher reads
    # the log up to there), not those of a fold whose state is in memory only.
    service.worker.engine.state_write_seconds = 3600.0
    shop.order("c2", T0, gross="1.00")  # the same minute bucket
    before = figures(client, **WEEK)
    assert service.worker.engine.store.pending_rows > 0
    # One row per cause is left of the five: the first version and the four edits.
    assert service.worker.compact_now() == 3
    assert change_rows() == 3
    causes = con.execute(
        "SELECT cause, gross_sales FROM metrics_sales_deltas ORDER BY changed_seq, cause"
    ).fetchall()
    merged = [(cause, str(gross)) for cause, gross in causes[:2]]
    assert merged == [("delivery", "10.0000"), ("order_edit", "4.0000")]
    service.worker.write_state_now()
    assert service.worker.compact_now() == 0  # c2's fold is recent
    after = figures(client, **WEEK)
    assert {k: v for k, v in after.items() if k != "as_of"} == {
        k: v for k, v in before.items() if k != "as_of"
    }
    assert after["gross_sales"] == "15.00"


def test_cold_state_is_found_again_by_a_late_update(client: TestClient, shop: Shop) -> None:
    worker = service_of(client).worker
    shop.cart("cartZ", T0)
    shop.order("z1", T0, gross="10.00", cart_token="cartZ")
    shop.refund("rz", "z1", T0, ["4.00"])
    figures(client, **WEEK)
    worker.demote_now()  # remembers where it is
    shop.order("z2", T0, gross="1.00")  # something else changes meanwhile
    figures(client, **WEEK)
    assert worker.demote_now() >= 3  # cartZ, z1 and its refund are now cold
    con = service_of(client).con.cursor()
    assert con.execute("SELECT count(*) FROM metrics_orders_cold").fetchall()[0][0] == 1
    # late events for the cold order and its refund are found and replace the cold rows
    shop.order(
        "z1",
        T0,
        gross="10.00",
        cart_token="cartZ",
        cancelled=True,
        updated=T0 + timedelta(hours=1),
        topic="orders/cancelled",
    )
    f = figures(client, **WEEK)
    assert (f["orders"], f["gross_sales"], f["returns"]) == (1, "1.00", "0.00")
    assert f["carts_converted"] == 1  # a cancellation does not undo the conversion
    assert con.execute("SELECT count(*) FROM metrics_orders WHERE id = 'z1'").fetchall() == [(1,)]
    assert con.execute("SELECT count(*) FROM metrics_refunds").fetchall() == [(1,)]
