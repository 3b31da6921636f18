"""The read API: field names, OpenAPI schema, time series, errors, and the recompute check."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from ingest.sources import Source
from shoppulse.cli import app as cli
from shoppulse.service import create_app
from shoppulse.settings import Settings
from tests.conftest import FrozenClock
from tests.helpers.app import figures, service_of
from tests.metrics.shop import WEEK, Shop

T0 = datetime(2026, 4, 6, 10, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FrozenClock:
    """The service clock at T0: events dated more than a day ahead of it are quarantined."""
    return FrozenClock(T0)


WINDOW_FIELDS = {
    "source",
    "from",
    "to",
    "orders",
    "currency",
    "gross_sales",
    "discounts",
    "returns",
    "net_sales",
    "aov",
    "by_currency",
    "orders_without_amounts",
    "carts_created",
    "carts_converted",
    "carts_abandoned",
    "carts_open",
    "checkouts_started",
    "checkouts_completed",
    "checkouts_abandoned",
    "checkouts_open",
    "cart_conversion_rate",
    "cart_abandonment_rate",
    "checkout_conversion_rate",
    "checkout_abandonment_rate",
    "provisional",
    "as_of",
    "watermark",
    "freshness_seconds",
    "events_folded_through",
    "definition_versions",
    "cart_abandon_after_seconds",
    "checkout_abandon_after_seconds",
}


def test_window_fields_match_the_openapi_schema(client: TestClient) -> None:
    Shop(client).order("1", T0, gross="10.00")
    body = figures(client, **WEEK)
    assert set(body) == WINDOW_FIELDS
    schema = client.get("/openapi.json").json()
    properties = schema["components"]["schemas"]["WindowFigures"]["properties"]
    assert set(properties) == WINDOW_FIELDS
    assert body["watermark"] is not None and body["events_folded_through"] == 1
    # the rules that make a rate provisional, from the service's settings (defaults here)
    assert (body["cart_abandon_after_seconds"], body["checkout_abandon_after_seconds"]) == (
        3600.0,
        600.0,
    )


def test_default_window_is_the_last_24_hours(client: TestClient, clock: FrozenClock) -> None:
    clock.now = T0 + timedelta(hours=1)
    Shop(client).order("1", T0, gross="10.00")
    Shop(client).order("2", T0 - timedelta(days=2), gross="99.00")
    body = figures(client)
    assert body["orders"] == 1
    assert body["to"] == (T0 + timedelta(hours=1, minutes=1)).isoformat()


def test_timeseries_by_grain(client: TestClient, clock: FrozenClock) -> None:
    clock.now = T0 + timedelta(hours=3)
    shop = Shop(client)
    shop.order("1", T0, gross="10.00")
    shop.order("2", T0 + timedelta(minutes=1), gross="20.00")
    shop.order("3", T0 + timedelta(hours=2), gross="30.00")
    service_of(client).worker.fold_now()

    def series(metric: str, grain: str) -> list[dict[str, object]]:
        response = client.get(
            "/api/v1/metrics/timeseries", params={"metric": metric, "grain": grain, **WEEK}
        )
        assert response.status_code == 200, response.text
        points: list[dict[str, object]] = response.json()["points"]
        return points

    assert [p["value"] for p in series("orders", "minute")] == [1, 1, 1]
    assert [p["value"] for p in series("orders", "hour")] == [2, 1]
    assert [p["value"] for p in series("orders", "day")] == [3]
    gross = series("gross_sales", "hour")
    assert [(p["currency"], p["value"]) for p in gross] == [("USD", "30.00"), ("USD", "30.00")]
    assert series("aov", "day")[0]["value"] == "20.00"


def test_rates_in_timeseries(client: TestClient, clock: FrozenClock) -> None:
    shop = Shop(client)
    shop.cart("a", T0)
    shop.cart("b", T0)
    shop.order("1", T0, cart_token="a")
    clock.now = T0 + timedelta(hours=2)
    service_of(client).worker.fold_now()
    response = client.get(
        "/api/v1/metrics/timeseries",
        params={"metric": "cart_conversion_rate", "grain": "day", **WEEK},
    )
    assert response.json()["points"][0]["value"] == 0.5


def test_errors_have_the_common_shape(client: TestClient) -> None:
    response = client.get("/api/v1/metrics/timeseries", params={"metric": "nope"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"
    assert "unknown metric 'nope'" in response.json()["error"]["message"]
    response = client.get(
        "/api/v1/metrics", params={"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}
    )
    assert response.status_code == 422 and "before" in response.json()["error"]["message"]
    response = client.get("/api/v1/metrics", params={"from": "yesterday"})
    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_request"
    response = client.get(
        "/api/v1/metrics/timeseries", params={"metric": "orders", "grain": "week"}
    )
    assert response.status_code == 422


def test_check_endpoint(client: TestClient) -> None:
    Shop(client).order("1", T0, gross="10.00")
    body = client.get("/api/v1/metrics/check").json()
    assert body == {"equal": True, "differences": [], "difference_count": 0}


def test_recompute_cli_finds_a_tampered_aggregate_and_rebuild_repairs_it(
    settings: Settings, sources: dict[str, Source], clock: FrozenClock
) -> None:
    with TestClient(create_app(settings, sources, clock=clock)) as client:
        Shop(client).order("1", T0, gross="10.00")
        service_of(client).worker.fold_now()
    runner = CliRunner()
    result = runner.invoke(cli, ["recompute", "--db", str(settings.db_path)])
    assert result.exit_code == 0, result.output
    assert "equal the full recompute" in result.output

    import duckdb

    con = duckdb.connect(str(settings.db_path))
    con.execute("UPDATE metrics_sales_deltas SET gross_sales = gross_sales + 1")
    con.close()
    result = runner.invoke(cli, ["recompute", "--db", str(settings.db_path)])
    assert result.exit_code == 1
    assert "differing aggregate rows" in result.output
    result = runner.invoke(cli, ["recompute", "--db", str(settings.db_path), "--rebuild"])
    assert result.exit_code == 0, result.output
    assert "equal the full recompute" in result.output


def test_recompute_cli_refuses_while_the_service_holds_the_file(
    settings: Settings, sources: dict[str, Source], clock: FrozenClock, tmp_path: object
) -> None:
    import subprocess
    import sys

    settings.db_path.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb,time; c=duckdb.connect({str(settings.db_path)!r}); "
            "print('ok',flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ok"
        result = CliRunner().invoke(cli, ["recompute", "--db", str(settings.db_path)])
        assert result.exit_code == 2
        assert "open in another process" in result.output
    finally:
        holder.kill()
        holder.wait(10)


@pytest.mark.parametrize(
    ("path", "params"),
    [("/api/v1/metrics", {}), ("/api/v1/metrics/timeseries", {"metric": "orders"})],
)
def test_an_unknown_source_is_404_with_the_one_error_body(
    client: TestClient, path: str, params: dict[str, str]
) -> None:
    Shop(client).order("1", T0, gross="10.00")
    response = client.get(path, params={**params, "source": "acmee"})
    assert response.status_code == 404
    error = response.json()["error"]
    assert (error["status"], error["code"]) == (404, "unknown_source")
    assert "'acmee'" in error["message"] and "known sources: acme" in error["message"]
    assert client.get(path, params={**params, "source": "acme"}).status_code == 200


def test_a_configured_source_without_data_and_a_removed_source_with_data_answer_200(
    settings: Settings, sources: dict[str, Source], clock: FrozenClock
) -> None:
    with TestClient(create_app(settings, sources, clock=clock)) as client:
        Shop(client).order("1", T0, gross="10.00")
    # The store is removed from the configuration and another one added: the old history stays
    # readable, and the new store answers with zeros until its first delivery.
    newer = {
        "fresh": Source.model_validate({"id": "fresh", "provider": "shopify", "secrets": ["s"]})
    }
    with TestClient(create_app(settings, newer, clock=clock)) as client:
        service_of(client).worker.fold_now()
        assert figures(client, source="acme", **WEEK)["orders"] == 1
        assert figures(client, source="fresh", **WEEK)["orders"] == 0
        assert client.get("/api/v1/metrics", params={"source": "nope"}).status_code == 404
