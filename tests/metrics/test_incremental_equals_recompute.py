"""Property: for any stream of deliveries, split into any batches, with the clock moved and the
service restarted or crashed anywhere, the incremental figures equal a full recompute at the same
now — whether the engine writes its state tables with every fold or keeps the changes in memory
(then a crash loses them, and the engine must fold those events again into state)."""

from __future__ import annotations

import shutil
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shoppulse.settings import Settings
from tests.conftest import SECRET, FrozenClock, make_source
from tests.helpers.app import service_of
from tests.metrics.shop import Shop, differences, start_service

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
SOURCES = ("s1", "s2")
CARTS = [f"cart{i}" for i in range(4)]
CHECKOUTS = [f"co{i}" for i in range(4)]
ORDERS = [f"{1000 + i}" for i in range(4)]

minutes = st.integers(min_value=0, max_value=240).map(lambda m: T0 + timedelta(minutes=m))
money = st.decimals(min_value=0, max_value=500, places=2).map(lambda d: f"{d:.2f}")


@dataclass
class Send:
    source: str
    kind: str
    args: dict[str, Any]
    delivery_id: str


@dataclass
class Resend:  # a retried delivery: same delivery id, same body
    index: int


@dataclass
class Fold:
    pass


@dataclass
class Advance:
    minutes: int


@dataclass
class Restart:
    pass


@dataclass
class Crash:  # the process dies: the files are left as they were after the last commit
    pass


@dataclass
class Demote:  # unchanged state moves to the cold tables
    pass


def _entity_created(name: str) -> datetime:
    return T0 + timedelta(minutes=7 * (hash(name) % 11))


cart_op = st.builds(
    lambda source, token, updated: Send(
        source,
        "cart",
        {
            "token": token,
            "created": _entity_created(token),
            "updated": max(updated, _entity_created(token)),
        },
        "",
    ),
    st.sampled_from(SOURCES),
    st.sampled_from(CARTS),
    minutes,
)
checkout_op = st.builds(
    lambda source, token, cart, updated: Send(
        source,
        "checkout",
        {
            "token": token,
            "cart_token": cart,
            "created": _entity_created(token),
            "updated": max(updated, _entity_created(token)),
        },
        "",
    ),
    st.sampled_from(SOURCES),
    st.sampled_from(CHECKOUTS),
    st.none() | st.sampled_from(CARTS),
    minutes,
)
order_op = st.builds(
    # versions of one order may disagree on its creation time (`shift`): the earliest counts
    lambda source, oid, updated, gross, disc, cur, cart, co, test, cancelled, shift: Send(
        source,
        "order",
        {
            "order_id": oid,
            "created": _entity_created(oid) + shift,
            "updated": max(updated, _entity_created(oid) + shift),
            "gross": gross,
            "discounts": disc,
            "currency": cur,
            "cart_token": cart,
            "checkout_token": co,
            "test": test,
            "cancelled": cancelled,
        },
        "",
    ),
    st.sampled_from(SOURCES),
    st.sampled_from(ORDERS),
    minutes,
    money,
    money,
    st.sampled_from(["USD", "EUR"]),
    st.none() | st.sampled_from(CARTS),
    st.none() | st.sampled_from(CHECKOUTS),
    st.booleans(),
    st.booleans(),
    st.sampled_from([timedelta(0), timedelta(0), timedelta(minutes=13), timedelta(hours=2)]),
)
delete_op = st.builds(
    lambda source, oid: Send(source, "delete", {"order_id": oid}, ""),
    st.sampled_from(SOURCES),
    st.sampled_from(ORDERS),
)
refund_op = st.builds(
    lambda source, rid, oid, created, amounts, cur: Send(
        source,
        "refund",
        {
            "refund_id": rid,
            "order_id": oid,
            "created": created,
            "amounts": amounts,
            "currency": cur,
        },
        "",
    ),
    st.sampled_from(SOURCES),
    st.sampled_from(["r1", "r2", "r3"]),
    st.sampled_from([*ORDERS, "9999"]),
    minutes,
    st.lists(money, max_size=3),
    st.sampled_from(["USD", "EUR"]),
)
step = st.one_of(
    cart_op,
    checkout_op,
    order_op,
    order_op,
    refund_op,
    delete_op,
    st.builds(Resend, st.integers(min_value=0, max_value=1000)),
    st.just(Fold()),
    st.builds(Advance, st.integers(min_value=1, max_value=90)),
    st.just(Restart()),
    st.just(Crash()),
    st.just(Demote()),
)


def _send(shop: Shop, op: Send) -> None:
    args = op.args
    if op.kind == "cart":
        shop.cart(args["token"], args["created"], args["updated"], delivery_id=op.delivery_id)
    elif op.kind == "checkout":
        shop.checkout(
            args["token"],
            args["cart_token"],
            args["created"],
            args["updated"],
            delivery_id=op.delivery_id,
        )
    elif op.kind == "order":
        shop.order(
            args["order_id"],
            args["created"],
            gross=args["gross"],
            discounts=args["discounts"],
            currency=args["currency"],
            updated=args["updated"],
            cart_token=args["cart_token"],
            checkout_token=args["checkout_token"],
            test=args["test"],
            cancelled=args["cancelled"],
            delivery_id=op.delivery_id,
        )
    elif op.kind == "delete":
        shop.delete_order(args["order_id"], delivery_id=op.delivery_id)
    else:
        shop.refund(
            args["refund_id"],
            args["order_id"],
            args["created"],
            args["amounts"],
            currency=args["currency"],
            delivery_id=op.delivery_id,
        )


def _crash_image(client: TestClient, into: Path) -> list[tuple[Path, Path | None]]:
    """Copies of the live database files as a crash would leave them now: (file, copy or None)."""
    service = service_of(client)
    into.mkdir(exist_ok=True)
    files = [service.settings.db_path, service.settings.db_path.with_name("live.duckdb.wal")]
    # No fold is running while the lock is held, and every delivery sent so far was committed
    # before it was acknowledged: the files are what they would be after a kill.
    with service.worker._lock:
        image: list[tuple[Path, Path | None]] = []
        for path in files:
            if path.exists():
                copy = into / path.name
                shutil.copyfile(path, copy)
                image.append((path, copy))
            else:
                image.append((path, None))
    return image


def _restore(image: list[tuple[Path, Path | None]]) -> None:
    for path, copy in image:
        if copy is None:
            path.unlink(missing_ok=True)
        else:
            shutil.copyfile(copy, path)


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    steps=st.lists(step, min_size=1, max_size=30),
    state_write_seconds=st.sampled_from([0.0, 3600.0]),
)
def test_incremental_equals_recompute(steps: list[object], state_write_seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        config = Settings(
            db_path=Path(tmp) / "live.duckdb",
            batch_linger_ms=0,
            metrics_state_write_seconds=state_write_seconds,
        )
        sources = {s: make_source(s, "shopify", SECRET) for s in SOURCES}
        clock = FrozenClock(T0)

        def start() -> TestClient:
            return start_service(config, sources, clock)

        client = start()
        stack.callback(lambda: client.__exit__(None, None, None))
        sent: list[Send] = []
        for number, op in enumerate(steps):
            if isinstance(op, Send):
                op.delivery_id = f"d{number}"
                sent.append(op)
                _send(Shop(client, op.source), op)
            elif isinstance(op, Resend) and sent:
                again = sent[op.index % len(sent)]
                _send(Shop(client, again.source), again)
            elif isinstance(op, Fold):
                assert differences(client) == []
            elif isinstance(op, Advance):
                clock.now += timedelta(minutes=op.minutes)
            elif isinstance(op, Demote):
                service_of(client).worker.demote_now()
            elif isinstance(op, Restart):
                client.__exit__(None, None, None)
                client = start()
            elif isinstance(op, Crash):
                image = _crash_image(client, Path(tmp) / "crash")
                client.__exit__(None, None, None)  # writes the state: undone by the restore
                _restore(image)
                client = start()
        assert differences(client) == []
        clock.now += timedelta(hours=3)  # every open cart and checkout times out
        assert differences(client) == []
