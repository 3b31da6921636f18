"""Reconciliation inside the real service (real DuckDB file, real HTTP stand-in API): the
schedule, runs on request, the report on the API and /metrics, dry runs, rejected credentials."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ingest.sources import Source
from shoppulse.service import create_app
from shoppulse.settings import Settings
from tests.conftest import SECRET, FrozenClock, make_source
from tests.helpers.app import figures, service_of
from tests.helpers.waiting import wait_for
from tests.ingest.bigcommerce_stand_in import v2_order
from tests.ingest.store_api_stand_in import (
    BC_TOKEN,
    STRIPE_KEY,
    StoreApi,
    running_store_api,
)
from tests.ingest.test_bigcommerce_enrichment import WINDOW as BC_WINDOW
from tests.ingest.test_bigcommerce_enrichment import deliver
from tests.ingest.test_reconcile_apis import session
from tests.ingest.test_reconcile_property import reconcile, store_sources
from tests.metrics.shop import WEEK

T0 = datetime(2025, 12, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def api() -> Iterator[StoreApi]:
    with running_store_api() as server:
        yield server


def sources(url: str) -> dict[str, Source]:
    """A BigCommerce and a Stripe source with store API credentials, and one without."""
    stores = store_sources(url)
    return {
        "bc": stores["bc"],
        "st": stores["st"],
        "plain": make_source("plain", "shopify", SECRET),
    }


def service(tmp_path: Path, url: str, **settings: Any) -> TestClient:
    values: dict[str, Any] = {"batch_linger_ms": 0.5, "reconcile_interval_seconds": 0}
    values.update(settings)
    config = Settings(db_path=tmp_path / "data" / "shoppulse.duckdb", **values)
    return TestClient(create_app(config, sources(url), clock=FrozenClock()))


def test_missed_orders_and_sessions_are_filled_and_reported(tmp_path: Path, api: StoreApi) -> None:
    api.bc_orders = [v2_order(250, created=T0, modified=T0 + timedelta(minutes=5))]
    api.stripe_sessions = [session(1, "complete"), session(2, "expired"), session(3, "open")]
    with service(tmp_path, api.url, reconcile_flag_missed=2) as client:
        dry = reconcile(client, source="bc", dry_run=True)
        assert (dry[0]["missing"], dry[0]["dry_run"]) == (1, True)
        assert figures(client, **WEEK, source="bc")["orders"] == 0  # a dry run stores nothing

        reports = {r["source"]: r for r in reconcile(client)}
        assert set(reports) == {"bc", "st"}  # the source without credentials is left out
        assert (reports["bc"]["missing"], reports["bc"]["filled_by_kind"]) == (1, {"order": 1})
        assert (reports["st"]["fetched"], reports["st"]["missing"]) == (2, 2)
        bc = figures(client, **WEEK, source="bc")
        assert (bc["orders"], bc["gross_sales"], bc["currency"]) == (1, "225.00", "EUR")
        st = figures(client, **WEEK, source="st")
        assert (st["orders"], st["checkouts_completed"], st["checkouts_abandoned"]) == (1, 1, 1)

        status = client.get("/api/v1/reconciliation").json()
        assert status["sources"]["st"]["missed_7d"] == 2
        assert status["sources"]["st"]["flagged"] is True
        assert status["sources"]["bc"]["flagged"] is False
        assert status["sources"]["bc"]["last_run"]["missing"] == 1  # the dry run is not "last"
        assert "plain" not in status["sources"]
        prometheus = client.get("/metrics").text
        assert 'shoppulse_reconciliation_missed_7d{source="st"} 2.0' in prometheus
        assert 'shoppulse_reconciliation_flagged{source="st"} 1.0' in prometheus
        assert 'shoppulse_reconciliation_records_total{source="bc",verdict="missing"} 1.0' in (
            prometheus  # the dry run is not counted
        )
        assert 'shoppulse_reconciliation_last_success_timestamp_seconds{source="bc"} 1.7' in (
            prometheus
        )

        # The filled deliveries carry their provenance; a second run stores nothing more.
        con = service_of(client).con.cursor()
        rows = con.execute(
            "SELECT delivery_id, headers FROM deliveries WHERE source = 'bc'"
        ).fetchall()
        assert rows[0][0] == "reconcile:store/order/updated:250:2025-12-10T12:05:00+00:00"
        assert '"x-shoppulse-provenance":"reconciliation"' in rows[0][1]
        again = reconcile(client)
        assert [(r["current"], r["missing"], r["newer"]) for r in again] == [(1, 0, 0), (2, 0, 0)]
        count = con.execute("SELECT count(*) FROM deliveries").fetchone()
        assert count is not None and count[0] == 3
        assert client.get("/api/v1/ingest/stats").json()["totals"]["accepted"] == 0
    with service(tmp_path, api.url) as restarted:  # webhook counters count webhooks only
        stats = restarted.get("/api/v1/ingest/stats").json()
        assert (stats["totals"]["accepted"], stats["last_delivery_at"]) == (0, None)


def test_rejected_credentials_are_reported_not_fatal(tmp_path: Path, api: StoreApi) -> None:
    api.faults = [(401, {}, {"status": 401})]
    with service(tmp_path, api.url) as client:
        report = reconcile(client, source="bc")[0]
        assert report["status"] == "credentials_rejected"
        assert "credentials rejected" in report["message"] and BC_TOKEN not in report["message"]
        status = client.get("/api/v1/reconciliation").json()["sources"]["bc"]
        assert status["credentials_rejected"] is True
        assert client.get("/healthz").status_code == 200
        assert reconcile(client, source="bc")[0]["status"] == "ok"  # fixed: the next run works


def test_requests_for_unknown_or_unreconcilable_sources_and_overlapping_runs(
    tmp_path: Path, api: StoreApi
) -> None:
    with service(tmp_path, api.url) as client:
        unknown = client.post("/api/v1/reconciliation/runs", json={"source": "nope"})
        assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "unknown_source")
        plain = client.post("/api/v1/reconciliation/runs", json={"source": "plain"})
        assert (plain.status_code, plain.json()["error"]["code"]) == (422, "no_api_credentials")
        assert client.get("/api/v1/reconciliation/runs/99").status_code == 404
        bad = client.post("/api/v1/reconciliation/runs", json={"since": "yesterday"})
        assert bad.status_code == 422

        api.faults = [(429, {"Retry-After": "1"}, None)]  # keeps the first run busy for 1 s
        first = client.post("/api/v1/reconciliation/runs", json={"source": "bc"})
        assert first.status_code == 202
        second = client.post("/api/v1/reconciliation/runs", json={"source": "bc"})
        assert (second.status_code, second.json()["error"]["code"]) == (409, "already_running")


def test_the_schedule_runs_each_source_with_overlapping_windows(
    tmp_path: Path, api: StoreApi
) -> None:
    with service(tmp_path, api.url, reconcile_interval_seconds=0.3) as client:

        def runs() -> list[dict[str, Any]]:
            body: list[dict[str, Any]] = client.get("/api/v1/reconciliation").json()["runs"]
            return [r for r in body if r["source"] == "bc" and r["status"] == "ok"]

        wait_for(lambda: len(runs()) >= 2, "two reconciliation runs")
        first, second = sorted(runs(), key=lambda r: r["run_id"])[:2]
        assert first["trigger"] == second["trigger"] == "schedule"
        # The clock is frozen: the first run covers the lookback (a day), the second starts an
        # hour (the overlap) before the first run started.
        assert first["since"] == "2025-12-31T00:00:00+00:00"
        assert second["since"] == "2025-12-31T23:00:00+00:00"


def test_a_bigcommerce_order_its_webhook_brought_is_current_despite_the_dispatch_lag(
    tmp_path: Path, api: StoreApi
) -> None:
    dispatched = datetime.fromtimestamp(1561479335, UTC)  # the webhook fixture's created_at
    changed = dispatched - timedelta(seconds=5)
    api.bc_orders = [v2_order(250, created=changed, modified=changed)]
    clock = FrozenClock()
    with service(tmp_path, api.url) as client:
        deliver(client, clock, "store_order_created.json")  # enrichment fetches its amounts
        wait_for(
            lambda: figures(client, **BC_WINDOW, source="bc")["orders_without_amounts"] == 0,
            "every order with its amounts",
        )
        report = reconcile(client, source="bc", since="2019-06-01T00:00:00Z")[0]
        assert (report["current"], report["older"], report["filled"]) == (1, 0, 0)

        later = dispatched + timedelta(hours=1)  # cancelled; that webhook was lost
        api.bc_orders = [v2_order(250, created=changed, modified=later, status_id=5)]
        report = reconcile(client, source="bc", since="2019-06-01T00:00:00Z")[0]
        assert (report["newer"], report["filled"]) == (1, 1)
        assert figures(client, **BC_WINDOW, source="bc")["orders"] == 0


def test_unmappable_records_are_quarantined_once_and_no_secret_is_ever_shown(
    tmp_path: Path, api: StoreApi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    broken = session(4, "complete")
    del broken["amount_subtotal"]
    api.stripe_sessions = [broken]
    api.faults = [(500, {}, None), (403, {}, None)]
    with service(tmp_path, api.url) as client:
        rejected = reconcile(client, source="st")[0]
        assert rejected["status"] == "credentials_rejected"
        first = reconcile(client, source="st")[0]
        assert (first["errors"], first["filled"]) == (1, 0)
        assert "amount_subtotal" in first["error_reasons"][0]
        quarantined = client.get(
            "/api/v1/ingest/quarantine", params={"reason": "reconciliation"}
        ).json()["deliveries"]
        assert [q["delivery_id"] for q in quarantined] == [
            "reconcile:checkout.session.completed:cs_0004:2025-12-10T12:04:00+00:00"
        ]
        assert reconcile(client, source="st")[0]["errors"] == 1  # reported again, stored once
        assert len(client.get("/api/v1/ingest/quarantine").json()["deliveries"]) == 1

        answers = [
            client.get("/api/v1/reconciliation").text,
            client.get("/metrics").text,
            client.get(f"/api/v1/reconciliation/runs/{rejected['run_id']}").text,
        ]
    shown = "\n".join(answers + [r.getMessage() for r in caplog.records])
    assert "reconciliation of st credentials_rejected" in shown  # the logs were captured
    for secret in (STRIPE_KEY, BC_TOKEN, SECRET):
        assert secret not in shown


def test_a_restart_waits_out_the_interval_since_the_last_run(tmp_path: Path, api: StoreApi) -> None:
    with service(tmp_path, api.url) as client:
        reconcile(client)
    asked = len(api.requests)
    with service(tmp_path, api.url, reconcile_interval_seconds=3600) as client:
        time.sleep(0.5)  # the schedule starts, and finds every source reconciled just now
        assert client.get("/api/v1/reconciliation").json()["sources"]["bc"]["running"] is None
        stored = client.get("/api/v1/reconciliation/runs/1").json()  # from before the restart
        assert (stored["run_id"], stored["status"]) == (1, "ok")
    assert len(api.requests) == asked


def test_a_source_may_have_its_own_interval(tmp_path: Path, api: StoreApi) -> None:
    stores = store_sources(api.url)
    hourly = stores["bc"].model_copy(update={"reconcile_interval_seconds": 0.2})
    config = Settings(db_path=tmp_path / "shoppulse.duckdb", reconcile_interval_seconds=0)
    app = create_app(config, {"bc": hourly, "st": stores["st"]}, clock=FrozenClock())
    with TestClient(app) as client:
        wait_for(
            lambda: len(client.get("/api/v1/reconciliation").json()["runs"]) >= 2,
            "two reconciliation runs",
        )
        status = client.get("/api/v1/reconciliation").json()
        assert {r["source"] for r in status["runs"]} == {"bc"}  # st has no schedule
        assert status["sources"]["bc"]["interval_seconds"] == 0.2

    with pytest.raises(ValueError, match="needs the source's store API credentials"):
        Source.model_validate(
            {
                "id": "p",
                "provider": "shopify",
                "secrets": [SECRET],
                "reconcile_interval_seconds": 60,
            }
        )
