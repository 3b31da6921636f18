"""Property: WooCommerce's trash is a reversible state, in the incremental fold and the recompute.

For any stream of WooCommerce order deliveries — versions, moves to the trash (a `trash` status
body or an `order.deleted` notice), restores, duplicates — folded in any batches with restarts
anywhere, the incremental figures equal a full recompute, and an order counts exactly when its
latest trash-or-restore delivery was not a move to the trash and its latest version counts.
"""

from __future__ import annotations

import copy
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shoppulse.settings import Settings
from tests.conftest import SECRET, FrozenClock, fixture_json, make_source, signed_post
from tests.helpers.app import figures
from tests.metrics.shop import WEEK, differences, start_service

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
ORDERS = ("701", "702", "703")
ORDER: dict[str, Any] = fixture_json("woocommerce", "order.updated.json")
COUNTED = ("processing", "completed")


@dataclass(frozen=True)
class Version:  # order.updated with a status (cancelled does not count)
    order: str
    status: str


@dataclass(frozen=True)
class Trash:  # to the trash: a `trash` status body, or WooCommerce's `{"id"}` deletion notice
    order: str
    notice: bool


@dataclass(frozen=True)
class Restore:  # order.restored, back to a status that counts
    order: str
    status: str


@dataclass(frozen=True)
class Repeat:  # the same delivery again (a duplicate: nothing changes)
    index: int


@dataclass(frozen=True)
class Fold:
    pass


@dataclass(frozen=True)
class Restart:
    pass


orders = st.sampled_from(ORDERS)
step = st.one_of(
    st.builds(Version, orders, st.sampled_from([*COUNTED, "cancelled"])),
    st.builds(Trash, orders, st.booleans()),
    st.builds(Restore, orders, st.sampled_from(COUNTED)),
    st.builds(Repeat, st.integers(min_value=0, max_value=100)),
    st.just(Fold()),
    st.just(Restart()),
)


def body(order: str, status: str, modified: datetime) -> bytes:
    payload = copy.deepcopy(ORDER)
    payload.update(
        id=int(order),
        status=status,
        date_created_gmt=T0.strftime("%Y-%m-%dT%H:%M:%S"),
        date_modified_gmt=modified.strftime("%Y-%m-%dT%H:%M:%S"),
        refunds=[],
    )
    return orjson.dumps(payload)


def delivery(op: Version | Trash | Restore, number: int) -> tuple[str, bytes]:
    """Topic and body; each delivery modifies the order a second later than the one before (and
    arrives at that moment: a deletion notice, which has no time, is dated by its arrival)."""
    modified = T0 + timedelta(seconds=number + 1)
    if isinstance(op, Trash):
        if op.notice:
            return "order.deleted", orjson.dumps({"id": int(op.order)})
        return "order.updated", body(op.order, "trash", modified)
    if isinstance(op, Restore):
        return "order.restored", body(op.order, op.status, modified)
    return "order.updated", body(op.order, op.status, modified)


def expected_orders(stored: list[Version | Trash | Restore]) -> int:
    """The model: per order, the latest trash-or-restore and the latest version decide."""
    trashed: dict[str, bool] = {}
    status: dict[str, str] = {}
    for op in stored:
        if isinstance(op, Trash):
            trashed[op.order] = True
        else:
            status[op.order] = op.status
            if isinstance(op, Restore):
                trashed[op.order] = False
    return sum(status.get(order) in COUNTED and not trashed.get(order, False) for order in ORDERS)


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    steps=st.lists(step, min_size=1, max_size=25),
    state_write_seconds=st.sampled_from([0.0, 3600.0]),
)
def test_the_trash_is_reversible_and_incremental_equals_recompute(
    steps: list[object], state_write_seconds: float
) -> None:
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        config = Settings(
            db_path=Path(tmp) / "live.duckdb",
            batch_linger_ms=0,
            metrics_state_write_seconds=state_write_seconds,
        )
        sources = {"woo": make_source("woo", "woocommerce", SECRET)}
        clock = FrozenClock(T0)

        def start() -> TestClient:
            return start_service(config, sources, clock)

        client = start()
        stack.callback(lambda: client.__exit__(None, None, None))
        sent: list[tuple[str, bytes, str]] = []
        stored: list[Version | Trash | Restore] = []
        for number, op in enumerate(steps):
            if isinstance(op, Version | Trash | Restore):
                clock.now = T0 + timedelta(seconds=number + 1)  # a notice is dated on arrival
                topic, payload = delivery(op, number)
                sent.append((topic, payload, f"d{number}"))
                answer = signed_post(
                    client, "woo", "woocommerce", payload, topic=topic, delivery_id=f"d{number}"
                )
                assert answer.status_code == 200, answer.text
                assert answer.json()["status"] == "stored", answer.text
                stored.append(op)
            elif isinstance(op, Repeat) and sent:
                topic, payload, delivery_id = sent[op.index % len(sent)]
                answer = signed_post(
                    client, "woo", "woocommerce", payload, topic=topic, delivery_id=delivery_id
                )
                assert answer.json()["status"] == "duplicate", answer.text
            elif isinstance(op, Fold):
                assert differences(client) == []
            elif isinstance(op, Restart):
                client.__exit__(None, None, None)
                client = start()
        assert differences(client) == []
        assert figures(client, source="woo", **WEEK)["orders"] == expected_orders(stored)


def test_an_older_body_resent_as_restored_does_not_bring_back_a_trashed_order(
    tmp_path: Path,
) -> None:
    """A replay: a captured authentic version re-sent under `order.restored` after the trash is
    older than the trash, so the order stays deleted; a real restore (newer) brings it back."""
    config = Settings(db_path=tmp_path / "live.duckdb", batch_linger_ms=0)
    clock = FrozenClock(T0 + timedelta(seconds=1))
    client = start_service(config, {"woo": make_source("woo", "woocommerce", SECRET)}, clock)
    try:
        old = body("701", "processing", T0 + timedelta(seconds=1))
        for topic, payload, delivery_id in (
            ("order.updated", old, "v1"),
            ("order.deleted", orjson.dumps({"id": 701}), "trash"),
            ("order.restored", old, "replay"),
        ):
            clock.now += timedelta(minutes=5)
            answer = signed_post(
                client, "woo", "woocommerce", payload, topic=topic, delivery_id=delivery_id
            )
            assert answer.json()["status"] == "stored", answer.text
        assert figures(client, source="woo", **WEEK)["orders"] == 0
        clock.now += timedelta(minutes=5)
        restored = body("701", "completed", clock.now)
        signed_post(client, "woo", "woocommerce", restored, topic="order.restored", delivery_id="r")
        assert figures(client, source="woo", **WEEK)["orders"] == 1
        assert differences(client) == []
    finally:
        client.__exit__(None, None, None)
