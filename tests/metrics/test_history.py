"""Property: for any stream of deliveries and any instants T during it, `as_of=T` asked after the
stream answers exactly what /api/v1/metrics (and /timeseries) answered at T, and every
restatement's causes add up to its difference exactly; its first reported value is what
`as_of` its close answers."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shoppulse.service import create_app
from shoppulse.settings import Settings
from tests.conftest import SECRET, FrozenClock, make_source
from tests.helpers.app import service_of
from tests.metrics.shop import Shop
from tests.metrics.test_incremental_equals_recompute import (
    SOURCES,
    T0,
    Crash,
    Restart,
    Send,
    _crash_image,
    _restore,
    _send,
    cart_op,
    checkout_op,
    delete_op,
    order_op,
    refund_op,
)

WINDOW = {"from": (T0 - timedelta(days=1)).isoformat(), "to": (T0 + timedelta(days=2)).isoformat()}
#: Figures and series asked at every observed instant, then again `as_of` it.
ASKED: list[tuple[str, dict[str, str]]] = [
    ("/api/v1/metrics", WINDOW),
    ("/api/v1/metrics", {}),  # the default window ends at the moment asked
    ("/api/v1/metrics", {"source": SOURCES[0], **WINDOW}),
    ("/api/v1/metrics/timeseries", {"metric": "net_sales", "grain": "hour", **WINDOW}),
    ("/api/v1/metrics/timeseries", {"metric": "carts_abandoned", "grain": "minute", **WINDOW}),
    ("/api/v1/metrics/timeseries", {"metric": "checkout_abandonment_rate", **WINDOW}),
]


@dataclass
class Observe:  # ask the API now, and remember what it answered
    pass


@dataclass
class Wait:
    seconds: int


step = st.one_of(
    cart_op,
    checkout_op,
    order_op,
    order_op,
    refund_op,
    delete_op,
    st.just(Observe()),
    st.builds(Wait, st.integers(min_value=1, max_value=100 * 60)),
    st.sampled_from([Restart(), Crash()]),  # rarer than the rest: each costs a start
)


def _get(client: TestClient, path: str, params: dict[str, str]) -> Any:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def _observe(client: TestClient) -> list[Any]:
    service_of(client).worker.fold_now()
    return [_get(client, path, params) for path, params in ASKED]


def _series_value(points: list[dict[str, Any]], bucket: str, currency: str | None) -> Any:
    values = [p["value"] for p in points if p["bucket"] == bucket and p.get("currency") == currency]
    return values[0] if values else None


def _check_restatements(client: TestClient, metric: str, zero: Any) -> int:
    params = {"metric": metric, "grain": "hour", **WINDOW}
    body = _get(client, "/api/v1/metrics/restatements", params)
    for entry in body["buckets"]:
        if entry["first_reported"] is None:
            continue
        as_number = Decimal if isinstance(entry["now"], str) else int
        causes = sum((as_number(v) for v in entry["causes"].values()), as_number(0))
        assert causes == as_number(entry["difference"]), entry
        assert as_number(entry["now"]) - as_number(entry["first_reported"]) == causes
        series_params = {"metric": metric, "grain": "hour", **WINDOW, "as_of": entry["closed_at"]}
        then = _get(client, "/api/v1/metrics/timeseries", series_params)["points"]
        first = _series_value(then, entry["bucket"], entry["currency"])
        assert as_number(first if first is not None else zero) == as_number(
            entry["first_reported"]
        ), entry
    return len(body["buckets"])


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(steps=st.lists(step, min_size=1, max_size=30))
def test_as_of_answers_what_was_answered_then(steps: list[object]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = Settings(db_path=Path(tmp) / "live.duckdb", batch_linger_ms=0)
        sources = {s: make_source(s, "shopify", SECRET) for s in SOURCES}
        clock = FrozenClock(T0)
        answered: list[tuple[datetime, list[Any]]] = []
        client = TestClient(create_app(config, sources, clock=clock))
        client.__enter__()
        try:
            for number, op in enumerate(steps):
                if isinstance(op, Send):
                    op.delivery_id = f"d{number}"
                    _send(Shop(client, op.source), op)
                elif isinstance(op, Observe):
                    answered.append((clock.now, _observe(client)))
                    clock.now += timedelta(seconds=1)  # what follows happens after it
                elif isinstance(op, Wait):
                    clock.now += timedelta(seconds=op.seconds)
                elif isinstance(op, Restart | Crash):  # the history survives both
                    image = _crash_image(client, Path(tmp) / "crash")
                    client.__exit__(None, None, None)
                    if isinstance(op, Crash):
                        _restore(image)
                    client = TestClient(create_app(config, sources, clock=clock))
                    client.__enter__()
            answered.append((clock.now, _observe(client)))
            clock.now += timedelta(hours=5)  # every cart times out, every bucket closes
            _observe(client)
            for moment, then in answered:
                as_of = {"as_of": moment.isoformat()}
                now = [_get(client, path, {**params, **as_of}) for path, params in ASKED]
                assert now == then, moment
            _check_restatements(client, "net_sales", "0.00")
            _check_restatements(client, "carts_abandoned", 0)
            _check_restatements(client, "orders", 0)
        finally:
            client.__exit__(None, None, None)
