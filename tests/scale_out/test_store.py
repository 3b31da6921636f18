"""The store consumes the log: commit then acknowledge, catch up after an outage with its lag
visible, take only its own sources, and keep the replicas' rejection counts. Real nats-server,
real DuckDB files, the real apps through FastAPI's TestClient."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from fastapi.testclient import TestClient

from ingest.sources import Source
from shoppulse.scale_out.intake_app import create_intake_app
from shoppulse.scale_out.store_app import create_store_app
from shoppulse.settings import Settings
from tests.conftest import SECRET, FrozenClock, make_source
from tests.helpers.waiting import wait_for
from tests.scale_out.nats import NatsNode
from tests.scale_out.signed import signed_settings
from tests.scale_out.traffic import START, post, simulated

pytestmark = pytest.mark.timeout(90)

SOURCES = {
    "acme": make_source("acme", "shopify", SECRET),
    "beta": make_source("beta", "shopify", SECRET),
}


def clock() -> FrozenClock:
    return FrozenClock(START + timedelta(days=1))


@contextmanager
def intake(url: str, sources: dict[str, Source] = SOURCES) -> Iterator[TestClient]:
    settings = Settings(db_path=Path("unused.duckdb"))
    with TestClient(
        create_intake_app(settings, signed_settings(url=url), sources, clock())
    ) as client:
        yield client


@contextmanager
def store(
    url: str, db: Path, *, log_sources: list[str] | None = None, fetch_batch: int = 1000
) -> Iterator[TestClient]:
    settings = Settings(db_path=db, batch_linger_ms=0.5)
    logs = signed_settings(url=url, fetch_batch=fetch_batch)
    app = create_store_app(settings, logs, SOURCES, log_sources=log_sources, clock=clock())
    with TestClient(app) as client:
        yield client


def log_lag(client: TestClient) -> dict[str, Any]:
    lag: dict[str, Any] = client.get("/api/v1/ingest/stats").json()["log"]
    return lag


def stored_ids(db: Path) -> list[tuple[str, str]]:
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT source, delivery_id FROM deliveries ORDER BY 1, 2").fetchall()
    return [(str(s), str(d)) for s, d in rows]


def test_the_store_catches_up_after_an_outage_with_its_lag_visible(
    nats_node: NatsNode, tmp_path: Path
) -> None:
    deliveries = simulated(300)
    with intake(nats_node.url) as replica:
        answers = [post(replica, d) for d in deliveries]
    assert {a.status_code for a in answers} <= {200, 202}
    acknowledged = {("acme", d.delivery_id) for d in deliveries}

    db = tmp_path / "store" / "shoppulse.duckdb"
    with store(nats_node.url, db, fetch_batch=25) as client:
        first = log_lag(client)  # read when the consumer started, before it took anything
        assert first["consumer"] == "store-all"
        assert first["behind"] >= len(acknowledged)
        assert first["oldest_unacked_age_seconds"] > 0
        ready = client.get("/readyz").json()
        assert ready["status"] == "ready" and "behind" in ready["log"]
        wait_for(lambda: log_lag(client)["behind"] == 0, "the store caught up")
        assert log_lag(client)["oldest_unacked_age_seconds"] == 0
        totals = client.get("/api/v1/ingest/stats").json()["totals"]
        assert totals["accepted"] + totals["quarantined"] == len(acknowledged)
        assert client.get("/api/v1/metrics/check").json()["equal"]
        metrics = client.get("/metrics").text
        assert 'shoppulse_log_pending_messages{consumer="store-all"} 0.0' in metrics
        assert 'shoppulse_log_reachable{consumer="store-all"} 1.0' in metrics
    assert sorted(acknowledged) == stored_ids(db)  # each exactly once (the ledger's key)


def test_stores_with_disjoint_sources_take_only_their_own(
    nats_node: NatsNode, tmp_path: Path
) -> None:
    deliveries = simulated(120, sources=("acme", "beta"))
    with intake(nats_node.url) as replica:
        for delivery in deliveries:
            assert post(replica, delivery).status_code in (200, 202)
    by_source = {
        source: sorted({(source, d.delivery_id) for d in deliveries if d.source == source})
        for source in ("acme", "beta")
    }
    assert by_source["acme"] and by_source["beta"]
    for source in ("acme", "beta"):
        db = tmp_path / source / "shoppulse.duckdb"
        with store(nats_node.url, db, log_sources=[source]) as client:
            assert log_lag(client)["consumer"] == f"store-{source}"
            wait_for(lambda: log_lag(client)["behind"] == 0, f"the {source} store caught up")
        assert stored_ids(db) == by_source[source]


def test_rejections_at_the_replicas_reach_the_store_and_survive_its_restart(
    nats_node: NatsNode, tmp_path: Path
) -> None:
    delivery = simulated(1)[0]
    with intake(nats_node.url) as replica:
        assert post(replica, delivery).status_code == 200
        assert post(replica, delivery).json()["status"] == "duplicate"
        bad = replica.post("/webhooks/acme", content=b"{}", headers={"content-type": "text/plain"})
        assert bad.status_code == 415
        assert replica.post("/webhooks/nope", content=b"{}").status_code == 404
    db = tmp_path / "store" / "shoppulse.duckdb"
    for start in range(2):  # the second start reads the counts back from the database
        with store(nats_node.url, db) as client:
            wait_for(lambda: log_lag(client)["behind"] == 0, "the store caught up")
            stats = client.get("/api/v1/ingest/stats").json()
            acme = stats["sources"]["acme"]
            assert (acme["accepted"], acme["duplicate"], acme["rejected"]) == (1, 1, 1)
            assert acme["rejected_by_reason"] == {"unsupported_media_type": 1}
            assert stats["sources"]["_unknown"]["rejected_by_reason"] == {"unknown_source": 1}
            if start == 0:  # Prometheus counters count from the process start, as for `serve`
                metrics = client.get("/metrics").text
                assert 'shoppulse_deliveries_total{outcome="rejected",source="acme"} 1.0' in metrics
