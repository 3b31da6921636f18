"""The engine keeps the hot state tables in memory: it must always equal the tables, and a fold
that does not commit must leave nothing of itself behind, in the tables or in memory."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest
from fastapi.testclient import TestClient

from metrics import fold as F
from metrics.engine import MetricsEngine
from metrics.worker import MetricsWorker
from tests.conftest import FrozenClock
from tests.metrics.shop import Shop, differences

SPECS = (F.ORDER, F.REFUND, F.CHECKOUT, F.CART)


def _worker(client: TestClient) -> MetricsWorker:
    """The service's metrics worker, with its thread stopped: the test folds by hand."""
    worker: MetricsWorker = client.app.state.service.worker  # type: ignore[attr-defined]
    worker.stop()
    return worker


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort(F.KEY)


def _assert_mirror_equals_tables(engine: MetricsEngine) -> None:
    store = engine.store
    fold_seq = store.cursor()[1]
    store.open_mirror(SPECS, fold_seq)
    for spec in SPECS:
        table = store.con.sql(f"SELECT * FROM {spec.table}_hot").pl()
        expected = _sorted(table.select([pl.col(n).cast(t) for n, t in spec.schema]))
        assert _sorted(store.hot(spec)).equals(expected), spec.table


def _send_some(shop: Shop, clock: FrozenClock, prefix: str) -> None:
    now = clock.now
    shop.cart(f"{prefix}-cart", now, now)
    shop.checkout(f"{prefix}-co", f"{prefix}-cart", now, now)
    shop.order(
        f"{prefix}-1",
        now,
        gross="10.00",
        cart_token=f"{prefix}-cart",
        checkout_token=f"{prefix}-co",
    )
    shop.refund(f"{prefix}-r", f"{prefix}-1", now, ["2.50"])


def test_mirror_follows_folds_and_demotions(client: TestClient, clock: FrozenClock) -> None:
    worker = _worker(client)
    engine = worker.engine
    shop = Shop(client)
    _send_some(shop, clock, "a")
    assert differences(client) == []
    _assert_mirror_equals_tables(engine)
    worker.demote_now()
    worker.demote_now()  # rows unchanged since the first demotion move to the cold tables
    _assert_mirror_equals_tables(engine)
    clock.now += timedelta(minutes=90)  # the second cart and checkout time out
    _send_some(shop, clock, "b")
    created = clock.now - timedelta(minutes=90)
    shop.order("a-1", created, gross="12.00", updated=clock.now, cancelled=True)
    assert differences(client) == []
    _assert_mirror_equals_tables(engine)


def test_a_fold_that_fails_leaves_no_trace(
    client: TestClient, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = _worker(client)
    engine = worker.engine
    shop = Shop(client)
    _send_some(shop, clock, "a")
    assert differences(client) == []
    _send_some(shop, clock, "b")
    shop.order("a-1", clock.now, gross="11.00", updated=clock.now + timedelta(seconds=1))

    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    with monkeypatch.context() as patched:
        patched.setattr(engine.store, "set_cursor", fail)
        with pytest.raises(RuntimeError):
            worker.fold_now()  # every state row was written, then the fold failed
    _assert_mirror_equals_tables(engine)
    assert differences(client) == []
    _assert_mirror_equals_tables(engine)


def test_rows_that_do_not_change_are_not_rewritten(client: TestClient, clock: FrozenClock) -> None:
    worker = _worker(client)
    engine = worker.engine
    shop = Shop(client)
    _send_some(shop, clock, "a")
    worker.fold_now()

    def changed_seqs(table: str) -> dict[str, int]:
        rows = engine.con.execute(f"SELECT id, changed_seq FROM {table}").fetchall()
        return {str(key): int(seq) for key, seq in rows}

    before = changed_seqs("metrics_refunds")
    assert list(before) == ["a-r"]
    # A later version of the order that still counts: the order's row changes; its refund is
    # evaluated again with it and comes out the same, so it keeps the fold that last changed it.
    created = clock.now
    clock.now += timedelta(minutes=5)
    shop.order("a-1", created, gross="10.00", updated=clock.now)
    worker.fold_now()
    fold_seq = engine.store.cursor()[1]
    assert changed_seqs("metrics_orders")["a-1"] == fold_seq
    assert changed_seqs("metrics_refunds") == before
    assert differences(client) == []
    _assert_mirror_equals_tables(engine)
    # The order's cancellation changes whether the refund counts: now it is rewritten.
    clock.now += timedelta(minutes=5)
    shop.order("a-1", created, gross="10.00", updated=clock.now, cancelled=True)
    worker.fold_now()
    assert changed_seqs("metrics_refunds")["a-r"] == engine.store.cursor()[1]
    assert differences(client) == []
    _assert_mirror_equals_tables(engine)
