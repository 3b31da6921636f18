"""The dashboard's health panel shows a scaled-out store's place behind the log: the Streamlit
page (AppTest) reading a real store that consumes a real nats-server."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from dashboard.model import LogLag, build_health
from shoppulse.scale_out.intake_app import create_intake_app
from shoppulse.settings import Settings
from tests.conftest import SECRET, make_source
from tests.dashboard.test_page import app_for
from tests.helpers.waiting import wait_for
from tests.scale_out.conftest import RoleFactory
from tests.scale_out.nats import NatsNode
from tests.scale_out.signed import signed_settings
from tests.scale_out.test_faults import lag
from tests.scale_out.traffic import post, simulated

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

SOURCES = {"acme": make_source("acme", "shopify", SECRET)}


def log_captions(url: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    at = app_for(url, monkeypatch)
    at.run()
    assert not at.exception, at.exception
    return [caption.value for caption in at.caption if caption.value.startswith("Log:")]


def test_the_health_panel_shows_the_store_caught_up_then_the_log_unreachable(
    nats_node: NatsNode, roles: RoleFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = roles("store", nats_node.url).start()
    settings = Settings(db_path=store.db)  # the replica opens no database
    app = create_intake_app(settings, signed_settings(url=nats_node.url), SOURCES)
    with TestClient(app) as client:
        for delivery in simulated(20):
            assert post(client, delivery).status_code in (200, 202)
    wait_for(
        lambda: lag(store)["behind"] == 0 and lag(store)["committed_since_start"] > 0, "caught up"
    )
    assert log_captions(store.base_url, monkeypatch) == [
        "Log: caught up (every delivery the intake replicas acknowledged is stored)"
    ]

    nats_node.stop()
    wait_for(lambda: not lag(store)["reachable"], "the store noticed the log is gone")
    assert log_captions(store.base_url, monkeypatch) == [
        "Log: UNREACHABLE — the store takes no deliveries until it reconnects"
    ]
    # The embedded service's page has no log line (its stats have no `log` section).
    assert LogLag.from_stats({"log": {"role": "intake"}}) is None


def test_behind_is_counted_with_the_age_of_the_oldest_waiting() -> None:
    from tests.dashboard.test_model import figures

    stats = {
        "totals": {},
        "sources": {},
        "log": {"role": "store", "behind": 1234, "oldest_unacked_age_seconds": 95.0},
    }
    health = build_health(stats, figures(), None, None)
    assert health.log_lag == LogLag(behind=1234, oldest_age_seconds=95.0, reachable=True)
    from dashboard.sections import _log_lag

    assert _log_lag(health.log_lag) == "Log: 1,234 deliveries behind, the oldest waiting 1 min 35 s"
