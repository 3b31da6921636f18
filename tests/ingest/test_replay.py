"""Quarantine and replay: the library, the service endpoint, and both CLI paths.

Deliveries are quarantined for real: a service whose clock stands in the year 2000 receives
Shopify and WooCommerce fixtures dated 2017 to 2022, which are "more than 1 day in the future"
for it. Once the clock is right, a replay moves them out of quarantine. A body that is not JSON
and an order dated 2099 stay quarantined.
"""

from __future__ import annotations

import copy
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from ingest.providers import get_provider
from ingest.quarantine import NOT_JSON
from ingest.sources import Source
from shoppulse.cli import app as cli
from shoppulse.service import create_app
from shoppulse.settings import Settings
from tests.conftest import (
    SECRET,
    FrozenClock,
    fixture_bytes,
    fixture_json,
    make_source,
    signed_post,
)
from tests.e2e.server import ServiceProcess, write_sources
from tests.helpers.app import service_of

PAST = datetime(2000, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 1, 1, tzinfo=UTC)

SOURCES = {"acme": ("shopify", SECRET), "woo": ("woocommerce", SECRET)}


def sources_map() -> dict[str, Source]:
    return {sid: make_source(sid, provider, secret) for sid, (provider, secret) in SOURCES.items()}


def shop_order(order_id: str, **changes: Any) -> bytes:
    order = copy.deepcopy(fixture_json("shopify", "orders_create.json"))
    order.update({"id": order_id, "test": False, "cancelled_at": None, **changes})
    return orjson.dumps(order)


def send(client: TestClient, source: str, body: bytes, topic: str, delivery_id: str) -> str:
    provider = SOURCES[source][0]
    response = signed_post(client, source, provider, body, topic=topic, delivery_id=delivery_id)
    assert response.status_code in (200, 202), response.text
    return str(response.json()["status"])


def send_all(client: TestClient) -> None:
    """Six deliveries, all quarantined at the clock of the year 2000 but the first."""
    cart = orjson.loads(fixture_bytes("shopify", "carts_create.json"))
    cart.update({"token": "old-cart", "created_at": "1999-12-31T10:00:00Z"})
    cart["updated_at"] = cart["created_at"]
    assert send(client, "acme", orjson.dumps(cart), "carts/create", "d-accepted") == "stored"
    statuses = [
        send(client, "acme", shop_order("1001"), "orders/create", "d-order"),
        send(
            client, "acme", fixture_bytes("shopify", "carts_create.json"), "carts/create", "d-cart"
        ),
        send(client, "acme", b'{"id": 1, "total', "orders/create", "d-broken-json"),
        send(
            client,
            "acme",
            shop_order(
                "2099", processed_at="2099-01-01T00:00:00Z", updated_at="2099-01-01T00:00:00Z"
            ),
            "orders/create",
            "d-far-future",
        ),
        send(
            client, "woo", fixture_bytes("woocommerce", "order.created.json"), "order.created", "w1"
        ),
    ]
    assert statuses == ["quarantined"] * 5


def make_quarantined_db(db_path: Path) -> Path:
    settings = Settings(db_path=db_path, batch_linger_ms=0.5)
    with TestClient(create_app(settings, sources_map(), clock=FrozenClock(PAST))) as client:
        send_all(client)
    return db_path


@pytest.fixture(scope="module")
def quarantined_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_quarantined_db(tmp_path_factory.mktemp("template") / "shoppulse.duckdb")


@pytest.fixture
def quarantined_db(quarantined_template: Path, db_path: Path) -> Path:
    """A database with one accepted and five quarantined deliveries (service stopped)."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(quarantined_template, db_path)
    return db_path


def rows(db_path: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def statuses(db_path: Path) -> dict[str, tuple[str, str | None, int]]:
    return {
        r[0]: (r[1], r[2], r[3])
        for r in rows(
            db_path,
            # WooCommerce delivery ids are derived from the order: call its only one "w1".
            "SELECT CASE source WHEN 'woo' THEN 'w1' ELSE delivery_id END, status, reason, "
            "event_count FROM deliveries",
        )
    }


def assert_event_seqs_unique(db_path: Path) -> int:
    [(total, distinct, top)] = rows(
        db_path, "SELECT count(*), count(DISTINCT event_seq), max(event_seq) FROM events"
    )
    assert total == distinct == top, "event seqs must be unique and dense"
    return int(total)


def write_config(tmp_path: Path) -> Path:
    return write_sources(tmp_path / "sources.toml", SOURCES)


def run(*args: str) -> Any:
    """The CLI in a wide terminal (tables do not fold the ids the tests look for)."""
    return CliRunner().invoke(cli, list(args), env={"COLUMNS": "200"})


# ----------------------------------------------------------------------------- offline CLI


def test_cli_replays_with_the_service_stopped(quarantined_db: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path)
    common = ["--config", str(config), "--db", str(quarantined_db)]

    listed = run("quarantine", "list", "--db", str(quarantined_db), "--reason", "INVALID json")
    assert listed.exit_code == 0, listed.output
    assert "d-broken-json" in listed.output and "d-order" not in listed.output

    dry = run("replay", "--dry-run", *common)
    assert dry.exit_code == 0, dry.output
    assert (
        "dry run, nothing changed: would replay 5 quarantined deliveries: would move 3 out of "
        "quarantine (3 events); 2 would stay in quarantine" in dry.output
    )
    assert "replayed" not in dry.output
    assert sum(s == "quarantined" for s, _, _ in statuses(quarantined_db).values()) == 5

    only_woo = run("replay", "--source", "woo", *common)
    assert only_woo.exit_code == 0, only_woo.output
    assert "moved 1 out of quarantine (1 event); 0 stay" in only_woo.output

    result = run("replay", *common)
    assert result.exit_code == 0, result.output
    assert "moved 2 out of quarantine (2 events); 2 stay" in result.output
    assert "d-far-future" in result.output and "(new) event time 2099-01-01" in result.output
    state = statuses(quarantined_db)
    assert state["d-order"] == ("accepted", None, 1)
    assert state["d-cart"] == ("accepted", None, 1)
    assert state["w1"] == ("accepted", None, 1)
    assert state["d-broken-json"][0] == "quarantined"
    broken_reason = state["d-broken-json"][1]
    assert broken_reason is not None and broken_reason.startswith("invalid JSON")
    far_status, far_reason, _ = state["d-far-future"]
    assert far_status == "quarantined" and far_reason is not None
    assert "2099-01-01" in far_reason and "service clock 2000" not in far_reason
    assert assert_event_seqs_unique(quarantined_db) == 4  # 1 before, 3 replayed

    again = run("replay", *common)
    assert again.exit_code == 0, again.output
    assert "replayed 2 quarantined deliveries: moved 0 out of quarantine" in again.output
    assert assert_event_seqs_unique(quarantined_db) == 4

    # The service started afterwards folds the replayed events into the figures.
    settings = Settings(db_path=quarantined_db, batch_linger_ms=0.5)
    with TestClient(create_app(settings, sources_map(), clock=FrozenClock(NOW))) as client:
        service_of(client).worker.fold_now()
        body = client.get(
            "/api/v1/metrics",
            params={"from": "2017-01-01T00:00:00Z", "to": "2023-01-01T00:00:00Z"},
        ).json()
        assert body["orders"] == 2
        assert {c["currency"]: c["gross_sales"] for c in body["by_currency"]} == {"USD": "432.95"}
        assert body["carts_created"] == 1 and body["carts_abandoned"] == 1
        assert client.get("/api/v1/metrics/check").json()["equal"] is True
        stats = client.get("/api/v1/ingest/stats").json()["sources"]
        assert stats["acme"]["quarantined"] == 2 and stats["woo"]["quarantined"] == 0


def test_cli_replay_needs_the_sources_file_and_a_database(
    quarantined_db: Path, tmp_path: Path
) -> None:
    missing = run("replay", "--db", str(tmp_path / "none.duckdb"), "--config", "x.toml")
    assert missing.exit_code == 2 and "no database at" in missing.output
    no_config = run("replay", "--db", str(quarantined_db))
    assert no_config.exit_code == 2 and "no sources file" in no_config.output
    bad_since = run(
        "replay",
        "--db",
        str(quarantined_db),
        "--config",
        str(write_config(tmp_path)),
        "--since",
        "yesterday",
    )
    assert bad_since.exit_code == 2 and "is not an ISO 8601 time" in bad_since.output


def test_unconfigured_source_is_left_alone(quarantined_db: Path, tmp_path: Path) -> None:
    config = write_sources(tmp_path / "only-acme.toml", {"acme": ("shopify", SECRET)})
    result = run(
        "replay", "--config", str(config), "--db", str(quarantined_db), "--since", "1999-01-01"
    )
    assert result.exit_code == 0, result.output
    assert "1 of unconfigured sources left as they were" in result.output
    assert statuses(quarantined_db)["w1"][0] == "quarantined"


# ----------------------------------------------------------------------------- inside the service


def test_replay_endpoint_moves_deliveries_through_the_writer(
    db_path: Path, clock: FrozenClock
) -> None:
    clock.now = PAST
    settings = Settings(db_path=db_path, batch_linger_ms=0.5)
    with TestClient(create_app(settings, sources_map(), clock=clock)) as client:
        send_all(client)
        found = client.get("/api/v1/ingest/quarantine", params={"reason": "FUTURE"}).json()
        assert {d["delivery_id"] for d in found["deliveries"]} == {
            "d-order",
            "d-cart",
            "d-far-future",
            "order:727:2017-03-22T19:28:08:order.created",
        }
        clock.now = NOW

        first = client.post("/api/v1/ingest/replay", json={"limit": 2})
        assert first.status_code == 200, first.text
        page = first.json()
        assert page["total"] == 5 and page["examined"] == 2 and page["next_after"] is not None
        rest = client.post("/api/v1/ingest/replay", json={"after": page["next_after"]}).json()
        assert rest["next_after"] is None
        assert page["moved"] + rest["moved"] == 3
        assert page["stayed"] + rest["stayed"] == 2
        assert client.post("/api/v1/ingest/replay", json={}).json()["moved"] == 0

        # Events stored after the replay get seqs after the replayed ones (the writer's counter).
        later = shop_order("1002", processed_at="2025-12-31T23:00:00Z")
        assert send(client, "acme", later, "orders/create", "d-later") == "stored"
        service_of(client).worker.fold_now()
        figures = client.get(
            "/api/v1/metrics",
            params={"from": "2017-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
        ).json()
        assert figures["orders"] == 3
        assert client.get("/api/v1/metrics/check").json()["equal"] is True
        stats = client.get("/api/v1/ingest/stats").json()["sources"]
        assert (stats["acme"]["accepted"], stats["acme"]["quarantined"]) == (4, 2)

        invalid = client.post("/api/v1/ingest/replay", json={"limit": 0})
        assert invalid.status_code == 422 and invalid.json()["error"]["code"] == "invalid_request"
    assert assert_event_seqs_unique(db_path) == 5


@pytest.mark.slow
def test_cli_asks_the_running_service(tmp_path: Path) -> None:
    service = ServiceProcess.for_sources(tmp_path / "svc", SOURCES)
    make_quarantined_db(service.db)
    common = ["--config", str(service.config), "--db", str(service.db)]
    with service:
        listed = run("quarantine", "list", "--source", "acme", *common)
        assert listed.exit_code == 0, listed.output
        assert "asking it at" in listed.output and "d-broken-json" in listed.output

        result = run("replay", *common)
        assert result.exit_code == 0, result.output
        assert "moved 3 out of quarantine (3 events); 2 stay" in result.output
        assert "(now)" in result.output

        with service.client() as http:
            again = http.post("/api/v1/ingest/replay", json={}).json()
            assert again["moved"] == 0 and again["stayed"] == 2
            later = shop_order("1003")
            headers = {"Content-Type": "application/json"}
            headers.update(
                get_provider("shopify").sign(
                    later, SECRET, topic="orders/create", delivery_id="d-live", timestamp=0
                )
            )
            assert http.post("/webhooks/acme", content=later, headers=headers).status_code == 200
    assert statuses(service.db)["d-order"] == ("accepted", None, 1)
    assert assert_event_seqs_unique(service.db) == 5


def test_replay_filters_by_reason(quarantined_db: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = run(
        "replay", "--reason", "invalid", "--config", str(config), "--db", str(quarantined_db)
    )
    assert result.exit_code == 0, result.output
    assert "replayed 1 quarantined delivery: moved 0 out of quarantine" in result.output
    assert sum(s == "quarantined" for s, _, _ in statuses(quarantined_db).values()) == 5
    listed = run("quarantine", "list", "--reason", "invalid", "--db", str(quarantined_db))
    assert listed.exit_code == 0, listed.output
    assert "1 quarantined delivery (newest first)" in listed.output
    assert "what to do:" in listed.output
    assert f"1 delivery: {NOT_JSON}" in " ".join(listed.output.split())
