"""The "Restated" panel against a real service whose database holds a few days of history.

The history is made by the real app under a frozen clock three days ago (an order cancelled and
another delivered late after their day closed); then a real `shoppulse serve` on that database
answers the page, as it would after a restart.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from dashboard.data import ReadClient
from dashboard.restated import closed_days
from shoppulse.service import create_app
from shoppulse.settings import Settings
from tests.conftest import SECRET, FrozenClock, make_source
from tests.dashboard.test_page import app_for
from tests.e2e.server import ServiceProcess
from tests.helpers.app import figures
from tests.metrics.shop import Shop

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
DAY = TODAY - timedelta(days=3)


def _make_history(db: Path) -> None:
    """Day DAY closes with 150.00 USD; the next day B (50.00) is cancelled and C (30.00) of DAY
    arrives late: DAY is 130.00 now."""
    clock = FrozenClock(DAY + timedelta(hours=9))
    settings = Settings(db_path=db, batch_linger_ms=0.5)
    sources = {"acme": make_source("acme", "shopify", SECRET)}
    with TestClient(create_app(settings, sources, clock=clock)) as client:
        shop = Shop(client)
        shop.order("A", DAY + timedelta(hours=9), gross="100.00")
        shop.order("B", DAY + timedelta(hours=10), gross="50.00")
        figures(client)
        clock.now = DAY + timedelta(days=1, hours=2)
        figures(client)  # the day closed at midnight: first reported 150.00
        shop.order(
            "B",
            DAY + timedelta(hours=10),
            gross="50.00",
            cancelled=True,
            updated=clock.now,
            topic="orders/cancelled",
        )
        shop.order("C", DAY + timedelta(hours=23), gross="30.00")
        figures(client)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    workdir = tmp_path_factory.mktemp("restated-service")
    process = ServiceProcess.for_sources(workdir, {"acme": ("shopify", SECRET)})
    process.db.parent.mkdir(parents=True, exist_ok=True)
    _make_history(process.db)
    with process:
        yield process


def test_data_layer_reads_each_closed_day(service: ServiceProcess) -> None:
    with ReadClient(service.base_url) as client:
        [day] = client.restated_days(closed_days(datetime.now(UTC)))
    assert (day.day, day.currency) == (DAY, "USD")
    assert (str(day.first_reported), str(day.now), str(day.difference)) == (
        "150.00",
        "130.00",
        "-20.00",
    )
    assert dict(day.causes) == {"cancellation": -50, "late_delivery": 30}
    assert day.moved()


def test_panel_shows_first_reported_now_and_why_and_marks_the_moved_day(
    service: ServiceProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = app_for(service.base_url, monkeypatch)
    page.run()
    assert not page.exception, page.exception
    assert "Restated" in [header.value for header in page.subheader]
    tables = [table.value for table in page.dataframe]
    [restated] = [t for t in tables if isinstance(t, pd.DataFrame) and "why" in t.columns]
    assert restated.to_dict("records") == [
        {
            "day": DAY.strftime("%a %Y-%m-%d"),
            "first reported": "150.00 USD",
            "now": "130.00 USD",
            "difference": "-20.00 USD",
            "moved": "▲",
            "why": "cancellation or deletion -50.00 USD · late delivery +30.00 USD",
        }
    ]
