"""The same delivery stream through two intake replicas and the store, and through the embedded
service, gives the same /api/v1/metrics figures, exactly."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from metrics.definitions import METRICS
from shoppulse.scale_out.intake_app import create_intake_app
from shoppulse.scale_out.store_app import create_store_app
from shoppulse.service import create_app
from shoppulse.settings import Settings
from shoppulse.simulator import Mix
from tests.conftest import SECRET, FrozenClock, make_source
from tests.helpers.waiting import wait_for
from tests.scale_out.nats import NatsNode
from tests.scale_out.signed import signed_settings
from tests.scale_out.traffic import START, post, simulated

pytestmark = pytest.mark.timeout(120)

SOURCES = {"acme": make_source("acme", "shopify", SECRET)}
WINDOWS = [
    {
        "from": (START - timedelta(days=1)).isoformat(),
        "to": (START + timedelta(days=2)).isoformat(),
    },
    {"from": START.isoformat(), "to": (START + timedelta(hours=1)).isoformat(), "source": "acme"},
]


def figures(client: TestClient) -> list[Any]:
    check = client.get("/api/v1/metrics/check").json()  # folds what is pending first
    assert check["equal"], check
    found: list[Any] = [client.get("/api/v1/metrics", params=w).json() for w in WINDOWS]
    for metric in METRICS:
        params = {"metric": metric, "grain": "hour", **WINDOWS[0]}
        found.append(client.get("/api/v1/metrics/timeseries", params=params).json())
    return found


def test_scale_out_and_embedded_give_the_same_figures(nats_node: NatsNode, tmp_path: Path) -> None:
    deliveries = simulated(250, mix=Mix(unusable=0.05, duplicate=0.05))
    clock = FrozenClock(START + timedelta(days=1))
    embedded_settings = Settings(db_path=tmp_path / "embedded" / "shoppulse.duckdb")
    store_settings = Settings(db_path=tmp_path / "store" / "shoppulse.duckdb")
    logs = signed_settings(url=nats_node.url)

    with TestClient(create_app(embedded_settings, SOURCES, clock=clock)) as embedded:
        expected = [post(embedded, d).json()["status"] for d in deliveries]
        embedded_figures = figures(embedded)

    with (
        TestClient(create_intake_app(store_settings, logs, SOURCES, clock)) as first,
        TestClient(create_intake_app(store_settings, logs, SOURCES, clock)) as second,
    ):
        replicas = (first, second)
        got = [post(replicas[n % 2], d).json()["status"] for n, d in enumerate(deliveries)]
    assert got == expected
    assert {"stored", "duplicate", "quarantined"} <= set(expected)

    with TestClient(create_store_app(store_settings, logs, SOURCES, clock=clock)) as store:

        def caught_up() -> bool:
            return bool(store.get("/api/v1/ingest/stats").json()["log"]["behind"] == 0)

        wait_for(caught_up, "the store caught up")
        store_figures = figures(store)

    assert embedded_figures[0]["orders"] > 0
    assert store_figures == embedded_figures
