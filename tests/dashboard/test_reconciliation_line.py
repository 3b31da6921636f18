"""The health panel's reconciliation line: on the page (AppTest against a real service that
reconciled with a stand-in store API) and its wording."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dashboard.reconciliation import reconciliation_line
from tests.dashboard.test_page import app_for
from tests.e2e.server import ServiceProcess
from tests.ingest.bigcommerce_stand_in import v2_order
from tests.ingest.store_api_stand_in import running_store_api
from tests.ingest.test_reconcile_cli import config


def status(**sources: dict[str, object]) -> dict[str, object]:
    return {"sources": sources}


def test_the_line_counts_what_was_missed_and_names_what_needs_a_hand() -> None:
    assert reconciliation_line(status(), None) is None
    quiet = status(acme={"missed_7d": 0, "missed_7d_by_kind": {}})
    assert reconciliation_line(quiet, None) == (
        "Reconciliation with the store APIs: nothing missed by webhooks in the last 7 days"
    )
    assert reconciliation_line(quiet, "other") is None
    busy = status(
        acme={"missed_7d": 13, "missed_7d_by_kind": {"order": 12, "refund": 1}, "flagged": True},
        woo={"missed_7d_by_kind": {"order": 1}, "credentials_rejected": True},
    )
    assert reconciliation_line(busy, None) == (
        "13 orders and 1 refund missed by webhooks in the last 7 days, filled from the store "
        "APIs · acme: webhooks missed 13 records, its webhook subscription is likely gone · "
        "woo: store API credentials rejected, fix the key"
    )
    woo_line = reconciliation_line(busy, "woo")
    assert woo_line is not None and woo_line.startswith("1 order missed")


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_the_health_panel_says_what_the_webhooks_missed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recent = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    with running_store_api() as api:
        api.bc_orders = [v2_order(n, created=recent, modified=recent) for n in (250, 251)]
        sources = config(tmp_path, api.url)
        service = ServiceProcess(
            sources,
            tmp_path / "data" / "shoppulse.duckdb",
            workdir=tmp_path,
            env={"SHOPPULSE_RECONCILE_INTERVAL_SECONDS": "0"},
        )
        with service, service.client() as http:
            run = http.post("/api/v1/reconciliation/runs", json={"since": recent.isoformat()})
            assert run.status_code == 202, run.text
            run_id = run.json()["runs"][0]["run_id"]
            deadline = time.monotonic() + 30
            while http.get(f"/api/v1/reconciliation/runs/{run_id}").json()["status"] == "running":
                assert time.monotonic() < deadline
                time.sleep(0.1)
            at = app_for(service.base_url, monkeypatch)
            at.run()
            assert not at.exception, at.exception
            captions = [caption.value for caption in at.caption]
            assert "2 orders missed by webhooks in the last 7 days, filled from the store APIs" in (
                captions
            )
