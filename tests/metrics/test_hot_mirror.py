"""The engine keeps the hot state tables in memory, ahead of the tables: once written, they must
be equal; a fold that does not commit must leave nothing of itself behind, in the tables or in
memory; and state not written yet when the process dies is folded again from the events."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest
from fastapi.testclient import TestClient

from metrics import fold as F
from metrics.engine import MetricsEngine
from metrics.recompute import Difference, check
from metrics.worker import MetricsWorker
from tests.conftest import FrozenClock
from tests.helpers.app import service_of
from tests.metrics.shop import Shop, differences

SPECS = (F.ORDER, F.REFUND, F.CHECKOUT, F.CART)


def _worker(client: TestClient) -> MetricsWorker:
    """The service's metrics worker, with its thread stopped: the test folds by hand."""
    worker: MetricsWorker = service_of(client).worker
    worker.stop()
    return worker


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort(F.KEY)


def _assert_mirror_equals_tables(engine: MetricsEngine) -> None:
    """Once the engine has written the state it keeps in memory, its mirror equals the tables."""
    engine.write_state()
    store = engine.store
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


@pytest.mark.parametrize("state_write_seconds", [0.0, 3600.0])
def test_a_fold_that_fails_leaves_no_trace(
    client: TestClient,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
    state_write_seconds: float,
) -> None:
    worker = _worker(client)
    engine = worker.engine
    # 0: the failing fold has written the state tables; 3600: it has state of earlier folds
    # in memory only, which the engine must fold again from the events after dropping it.
    engine.state_write_seconds = state_write_seconds
    shop = Shop(client)
    _send_some(shop, clock, "a")
    assert differences(client) == []
    _send_some(shop, clock, "b")
    engine.fold(clock.now)  # committed; with 3600, its state stays in memory
    shop.order("a-1", clock.now, gross="11.00", updated=clock.now + timedelta(seconds=1))
    _send_some(shop, clock, "c")

    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    with monkeypatch.context() as patched:
        patched.setattr(engine.store, "set_cursor", fail)
        with pytest.raises(RuntimeError):
            worker.fold_now()  # every state row was written, then the fold failed
    _assert_mirror_equals_tables(engine)
    # b's order, folded by the fold that committed, must be known: cancelling it takes it out.
    shop.order(
        "b-1", clock.now, gross="10.00", updated=clock.now + timedelta(minutes=2), cancelled=True
    )
    assert differences(client) == []
    _assert_mirror_equals_tables(engine)


def test_rows_that_do_not_change_are_not_rewritten(client: TestClient, clock: FrozenClock) -> None:
    worker = _worker(client)
    engine = worker.engine
    shop = Shop(client)
    _send_some(shop, clock, "a")
    worker.fold_now()

    def changed_seqs(table: str) -> dict[str, int]:
        engine.write_state()  # the tables as of the last fold
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
    fold_seq = engine.store.cursor().fold_seq
    assert changed_seqs("metrics_orders")["a-1"] == fold_seq
    assert changed_seqs("metrics_refunds") == before
    assert differences(client) == []
    _assert_mirror_equals_tables(engine)
    # The order's cancellation changes whether the refund counts: now it is rewritten.
    clock.now += timedelta(minutes=5)
    shop.order("a-1", created, gross="10.00", updated=clock.now, cancelled=True)
    worker.fold_now()
    assert changed_seqs("metrics_refunds")["a-r"] == engine.store.cursor().fold_seq
    assert differences(client) == []
    _assert_mirror_equals_tables(engine)


def _state(engine: MetricsEngine) -> dict[str, pl.DataFrame]:
    """Every state row (hot and cold), without the fold that last changed it."""
    return {
        spec.table: _sorted(
            engine.con.sql(f"SELECT * EXCLUDE (changed_seq) FROM {spec.table}").pl()
        )
        for spec in SPECS
    }


def _cursor(engine: MetricsEngine) -> tuple[int, int, int, int]:
    row = engine.con.execute(
        "SELECT event_seq, fold_seq, state_event_seq, state_fold_seq FROM metrics_cursor"
    ).fetchall()[0]
    return int(row[0]), int(row[1]), int(row[2]), int(row[3])


def test_state_is_written_every_interval_and_at_stop(
    client: TestClient, clock: FrozenClock
) -> None:
    worker = _worker(client)
    engine = worker.engine
    engine.state_write_seconds = 3600.0  # folds by hand: no demotion, which writes the state
    shop = Shop(client)
    _send_some(shop, clock, "a")
    engine.fold(clock.now)
    event_seq, fold_seq, state_event_seq, state_fold_seq = _cursor(engine)
    assert (state_event_seq, state_fold_seq) == (0, 0) and event_seq > 0 and fold_seq > 0
    assert engine.con.sql("SELECT count(*) FROM metrics_orders").fetchall()[0][0] == 0
    assert _aggregate_differences(engine) == []  # the aggregates count them already

    engine.state_write_seconds = 0.0  # the interval has passed: the next fold writes
    _send_some(shop, clock, "b")
    report = engine.fold(clock.now)
    assert report.state_rows_written == 8  # a and b: cart, checkout, order, refund each
    event_seq, fold_seq, state_event_seq, state_fold_seq = _cursor(engine)
    assert (state_event_seq, state_fold_seq) == (event_seq, fold_seq)

    engine.state_write_seconds = 3600.0
    _send_some(shop, clock, "c")
    engine.fold(clock.now)
    assert _cursor(engine)[2] < _cursor(engine)[0]
    worker.stop()  # a stop writes what is in memory
    event_seq, fold_seq, state_event_seq, state_fold_seq = _cursor(engine)
    assert (state_event_seq, state_fold_seq) == (event_seq, fold_seq)
    orders = engine.con.sql("SELECT id FROM metrics_orders ORDER BY id").fetchall()
    assert [row[0] for row in orders] == ["a-1", "b-1", "c-1"]


def test_state_lost_in_a_crash_is_folded_again(client: TestClient, clock: FrozenClock) -> None:
    worker = _worker(client)
    engine = worker.engine
    engine.state_write_seconds = 3600.0
    shop = Shop(client)
    _send_some(shop, clock, "a")
    engine.fold(clock.now)
    engine.write_state()
    # Folds whose state stays in memory: new entities, a cancellation that changes a written
    # order and its refund, a cart that times out, and a late order converting it.
    _send_some(shop, clock, "b")
    created = clock.now
    shop.order(
        "a-1", created, gross="10.00", updated=clock.now + timedelta(minutes=1), cancelled=True
    )
    engine.fold(clock.now)
    clock.now += timedelta(minutes=90)
    engine.fold(clock.now)
    shop.cart("late-cart", created, created)
    engine.fold(clock.now)
    shop.order("late-1", created, gross="7.00", cart_token="late-cart")
    engine.fold(clock.now)
    assert _cursor(engine)[2] < _cursor(engine)[0]  # not written yet

    # The process dies: what the files hold is the tables as last written and the cursor. A new
    # engine on the same database (what a restart makes) must fold those events again.
    expected = _in_memory_state(engine)
    restarted = MetricsEngine(
        engine.con,
        cart_abandon_after=engine.cart_abandon_after,
        checkout_abandon_after=engine.checkout_abandon_after,
        state_write_seconds=3600.0,
    )
    assert _aggregate_differences(engine) == []
    report = restarted.fold(clock.now)
    assert report.events == 0
    restarted.write_state()
    state = _state(restarted)
    for table, frame in expected.items():
        assert state[table].height == frame.height > 0, table
        assert state[table].equals(frame.cast(state[table].schema)), table
    assert differences(client) == []


def _aggregate_differences(engine: MetricsEngine) -> list[Difference]:
    """The aggregates against a full recompute, without folding (which may write the state)."""
    return check(
        engine.con,
        cart_abandon_after=engine.cart_abandon_after,
        checkout_abandon_after=engine.checkout_abandon_after,
    )


def _in_memory_state(engine: MetricsEngine) -> dict[str, pl.DataFrame]:
    """The state the engine holds: written tables overlaid with its mirror, as `_state` reads."""
    store = engine.store
    frames = {}
    for spec in SPECS:
        cold = engine.con.sql(f"SELECT * EXCLUDE (changed_seq) FROM {spec.table}_cold").pl()
        hot = store.hot(spec).drop("changed_seq")
        frames[spec.table] = _sorted(pl.concat([hot, cold.cast(dict(hot.schema))]))
    return frames
