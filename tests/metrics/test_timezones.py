"""Time zones: a source's `timezone` (or the display zone) decides its hour and day buckets."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from ingest.sources import ConfigError, Source, load_sources
from shoppulse.service import create_app
from shoppulse.settings import Settings
from tests.conftest import SECRET, FrozenClock
from tests.helpers.app import service_of
from tests.metrics.shop import Shop

NOW = datetime(2026, 1, 12, 12, 0, tzinfo=UTC)
SPAN = {"from": "2026-01-08T00:00:00Z", "to": "2026-01-13T00:00:00Z"}


def source(source_id: str, timezone: str | None = None) -> Source:
    fields: dict[str, Any] = {"id": source_id, "provider": "shopify", "secrets": [SECRET]}
    if timezone is not None:
        fields["timezone"] = timezone
    return Source.model_validate(fields)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        db_path=tmp_path / "data" / "shoppulse.duckdb",
        batch_linger_ms=0.5,
        display_timezone="America/New_York",
    )
    sources = {"berlin": source("berlin", "Europe/Berlin"), "plain": source("plain")}
    app = create_app(settings, sources, clock=FrozenClock(NOW))
    with TestClient(app) as test_client:
        # 23:30 UTC on Jan 10 is 00:30 on Jan 11 in Berlin and 18:30 on Jan 10 in New York;
        # 02:30 UTC on Jan 11 is 03:30 on Jan 11 in Berlin and 21:30 on Jan 10 in New York.
        Shop(test_client, "berlin").order("b1", datetime(2026, 1, 10, 23, 30, tzinfo=UTC))
        Shop(test_client, "plain").order("p1", datetime(2026, 1, 11, 2, 30, tzinfo=UTC))
        service_of(test_client).worker.fold_now()
        yield test_client


def days(client: TestClient, **params: str) -> tuple[str, list[tuple[str, int]]]:
    response = client.get(
        "/api/v1/metrics/timeseries", params={"metric": "orders", "grain": "day", **SPAN, **params}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    return body["timezone"], [(p["bucket"], p["value"]) for p in body["points"]]


def test_a_sources_days_follow_its_time_zone(client: TestClient) -> None:
    # Berlin's Jan 11 begins at 23:00 UTC on Jan 10: the order at 23:30 UTC is on Jan 11 there
    assert days(client, source="berlin") == (
        "Europe/Berlin",
        [("2026-01-10T23:00:00+00:00", 1)],
    )
    # a source without a zone of its own follows the display zone: Jan 10 in New York
    assert days(client, source="plain") == (
        "America/New_York",
        [("2026-01-10T05:00:00+00:00", 1)],
    )


def test_all_sources_follow_the_display_zone_or_the_zone_asked_for(client: TestClient) -> None:
    zone, points = days(client)
    assert zone == "America/New_York"
    assert points == [("2026-01-10T05:00:00+00:00", 2)]  # both on Jan 10 in New York
    zone, points = days(client, tz="UTC")
    assert points == [("2026-01-10T00:00:00+00:00", 1), ("2026-01-11T00:00:00+00:00", 1)]
    # +05:30: both are on Jan 11 in Kolkata (05:00 and 08:00), whose day begins at 18:30 UTC
    zone, points = days(client, tz="Asia/Kolkata")
    assert points == [("2026-01-10T18:30:00+00:00", 2)]
    hours = client.get(
        "/api/v1/metrics/timeseries",
        params={"metric": "orders", "grain": "hour", "tz": "Asia/Kolkata", **SPAN},
    ).json()["points"]
    assert [p["bucket"] for p in hours] == [
        "2026-01-10T23:30:00+00:00",
        "2026-01-11T02:30:00+00:00",
    ]


def test_an_unknown_zone_is_a_clear_422(client: TestClient) -> None:
    response = client.get(
        "/api/v1/metrics/timeseries", params={"metric": "orders", "tz": "Europe/Berln"}
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert "unknown time zone 'Europe/Berln'" in error["message"]


def test_the_zones_are_listed(client: TestClient) -> None:
    response = client.get("/api/v1/metrics/timezones")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "display_timezone": "America/New_York",
        "sources": {"berlin": "Europe/Berlin", "plain": "America/New_York"},
    }


def test_an_unknown_zone_stops_the_start_with_the_reason(tmp_path: Path) -> None:
    config = tmp_path / "sources.toml"
    config.write_text(
        '[[sources]]\nid = "acme"\nprovider = "shopify"\nsecrets = ["s"]\n'
        'timezone = "Europe/Berln"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"sources\.0\.timezone: .*unknown time zone"):
        load_sources(config)
    with pytest.raises(ValidationError, match="unknown time zone 'Mars/Olympus'"):
        Settings(display_timezone="Mars/Olympus")


def test_minutes_are_the_same_in_every_zone(client: TestClient) -> None:
    for tz in ("UTC", "Asia/Kolkata"):
        response = client.get(
            "/api/v1/metrics/timeseries",
            params={"metric": "orders", "grain": "minute", "tz": tz, **SPAN},
        )
        buckets = [p["bucket"] for p in response.json()["points"]]
        assert buckets == ["2026-01-10T23:30:00+00:00", "2026-01-11T02:30:00+00:00"]
        assert NOW - timedelta(days=2) < datetime.fromisoformat(buckets[-1])
