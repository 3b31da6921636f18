"""Every answer of POST /webhooks/{source}: stored, duplicate, quarantined and each rejection."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from ingest.providers import get_provider
from ingest.quarantine import FIX_MAPPING, NOT_JSON, UNSUBSCRIBE
from ingest.sources import ConfigError, Source, check_secrets, load_sources
from ingest.storage.body_codec import unpack
from shoppulse.service import create_app
from shoppulse.settings import Settings
from tests.conftest import SECRET, FrozenClock, fixture_bytes, signed_post
from tests.helpers.app import service_of

ORDER = fixture_bytes("shopify", "orders_create.json")


def count(client: TestClient, sql: str) -> int:
    row = service_of(client).con.cursor().execute(sql).fetchone()
    assert row is not None
    return int(row[0])


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["status"] == status
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    error: dict[str, object] = body["error"]
    return error


def test_duplicate_delivery_is_acknowledged_once(client: TestClient) -> None:
    first = signed_post(client, "acme", "shopify", ORDER, topic="orders/create", delivery_id="dup")
    second = signed_post(client, "acme", "shopify", ORDER, topic="orders/create", delivery_id="dup")
    assert first.json()["status"] == "stored"
    assert second.status_code == 200 and second.json()["status"] == "duplicate"
    assert count(client, "SELECT count(*) FROM deliveries") == 1
    assert count(client, "SELECT count(*) FROM events") == 1
    stats = client.get("/api/v1/ingest/stats").json()
    assert stats["sources"]["acme"]["accepted"] == 1
    assert stats["sources"]["acme"]["duplicate"] == 1


def test_same_delivery_id_in_another_source_is_not_a_duplicate(
    settings: Settings, clock: FrozenClock
) -> None:
    sources = {
        "a": Source.model_validate({"id": "a", "provider": "shopify", "secrets": [SECRET]}),
        "b": Source.model_validate({"id": "b", "provider": "shopify", "secrets": [SECRET]}),
    }
    with TestClient(create_app(settings, sources, clock=clock)) as client:
        for source in ("a", "b"):
            response = signed_post(
                client, source, "shopify", ORDER, topic="orders/create", delivery_id="same"
            )
            assert response.json()["status"] == "stored"


def test_concurrent_duplicates_store_one(client: TestClient) -> None:
    results: list[str] = []

    def send() -> None:
        response = signed_post(
            client, "acme", "shopify", ORDER, topic="orders/create", delivery_id="race"
        )
        results.append(response.json()["status"])

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(results) == ["duplicate"] * 7 + ["stored"]
    assert count(client, "SELECT count(*) FROM deliveries") == 1


def test_tampered_body_is_401_and_stores_nothing(client: TestClient) -> None:
    headers = get_provider("shopify").sign(
        ORDER, SECRET, topic="orders/create", delivery_id="t", timestamp=0
    )
    response = client.post(
        "/webhooks/acme", content=ORDER.replace(b"414.95", b"999.99"), headers=headers
    )
    assert_error(response, 401, "invalid_signature")
    assert count(client, "SELECT count(*) FROM deliveries") == 0
    stats = client.get("/api/v1/ingest/stats").json()
    assert stats["sources"]["acme"]["rejected_by_reason"] == {"invalid_signature": 1}


def test_wrong_secret_and_missing_signature_are_401(client: TestClient) -> None:
    response = signed_post(
        client,
        "acme",
        "shopify",
        ORDER,
        topic="orders/create",
        delivery_id="w",
        secret="not-the-secret",
    )
    assert_error(response, 401, "invalid_signature")
    response = client.post(
        "/webhooks/acme", content=ORDER, headers={"content-type": "application/json"}
    )
    error = assert_error(response, 401, "invalid_signature")
    assert "X-Shopify-Hmac-Sha256" in str(error["message"])


def test_unknown_source_is_404(client: TestClient) -> None:
    response = signed_post(client, "nope", "shopify", ORDER, topic="orders/create", delivery_id="n")
    assert_error(response, 404, "unknown_source")


def test_oversized_body_is_413(
    settings: Settings, sources: dict[str, Source], clock: FrozenClock
) -> None:
    small = settings.model_copy(update={"max_body_bytes": 4096})
    with TestClient(create_app(small, sources, clock=clock)) as client:
        response = signed_post(
            client, "acme", "shopify", ORDER, topic="orders/create", delivery_id="big"
        )
        assert_error(response, 413, "body_too_large")

        def chunks() -> object:
            for _ in range(10):
                yield b" " * 1000

        # no Content-Length: the limit is enforced while streaming
        response = client.post(
            "/webhooks/acme",
            content=chunks(),
            headers={"content-type": "application/json"},
        )
        assert_error(response, 413, "body_too_large")


def test_default_limit_accepts_a_large_order(client: TestClient) -> None:
    import orjson

    order = orjson.loads(ORDER)
    order["line_items"] = order["line_items"] * 300  # a big order, ~1.5 MB
    body = orjson.dumps(order)
    assert 1_000_000 < len(body) < 5 * 1024 * 1024
    response = signed_post(client, "acme", "shopify", body, topic="orders/create", delivery_id="L")
    assert response.status_code == 200


def test_non_json_content_type_is_415(client: TestClient) -> None:
    headers = get_provider("shopify").sign(
        ORDER, SECRET, topic="orders/create", delivery_id="x", timestamp=0
    )
    headers["Content-Type"] = "text/plain"
    assert_error(
        client.post("/webhooks/acme", content=ORDER, headers=headers), 415, "unsupported_media_type"
    )


@pytest.mark.parametrize(
    "body,topic,reason",
    [
        (b"{not json", "orders/create", "invalid JSON"),
        (b'{"id": 1}', "products/update", "unknown topic 'products/update'"),
        (
            b'{"id": 1, "updated_at": "2026-01-01T00:00:00Z"}',
            "orders/create",
            "field 'total_line_items_price' is missing",
        ),
        (
            b'{"id": 1, "total_line_items_price": "1.00", "created_at": "yesterday", '
            b'"updated_at": "2026-01-01T00:00:00Z"}',
            "orders/create",
            "field 'created_at' is not an ISO 8601 timestamp",
        ),
        (b'{"id": {"nested": 1}}', "orders/delete", "field 'id' must be a string or integer"),
        (b"[1, 2]", "carts/create", "payload must be a JSON object"),
        (
            b'{"id": 1, "total_line_items_price": "NaN", "created_at": "2026-01-01T00:00:00Z",'
            b' "updated_at": "2026-01-01T00:00:00Z"}',
            "orders/create",
            "not a finite amount",
        ),
        (
            b'{"id": 1, "total_line_items_price": "1e30", "created_at": "2026-01-01T00:00:00Z",'
            b' "updated_at": "2026-01-01T00:00:00Z"}',
            "orders/create",
            "gross_sales",
        ),
    ],
)
def test_authentic_but_unusable_is_quarantined(
    client: TestClient, body: bytes, topic: str, reason: str
) -> None:
    response = signed_post(client, "acme", "shopify", body, topic=topic, delivery_id="q")
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "quarantined"
    assert reason in response.json()["reason"]
    advice = {"invalid JSON": NOT_JSON, "unknown topic 'products/update'": UNSUBSCRIBE}
    assert response.json()["next"] == f"stored in quarantine; {advice.get(reason, FIX_MAPPING)}"
    rows = (
        service_of(client)
        .con.cursor()
        .execute(
            "SELECT status, reason, body, topic, body_codec FROM deliveries WHERE delivery_id = 'q'"
        )
        .fetchall()
    )
    assert len(rows) == 1
    status, stored_reason, stored_body, stored_topic, codec = rows[0]
    assert status == "quarantined" and reason in stored_reason
    assert unpack(stored_body, codec) == body and stored_topic == topic
    assert count(client, "SELECT count(*) FROM events") == 0
    # the same delivery again is a duplicate, still stored once
    again = signed_post(client, "acme", "shopify", body, topic=topic, delivery_id="q")
    assert again.json()["status"] == "duplicate"


def test_overloaded_writer_answers_503_and_stores_nothing_unacknowledged(
    settings: Settings, sources: dict[str, Source], clock: FrozenClock
) -> None:
    tight = settings.model_copy(update={"queue_max": 1, "batch_linger_ms": 0})
    with TestClient(create_app(tight, sources, clock=clock)) as client:
        writer = service_of(client).writer
        release = threading.Event()
        started = threading.Event()

        def hold(_: object) -> None:
            started.set()
            release.wait(10)

        writer.run_job(hold)  # occupies the writer thread
        assert started.wait(5)
        results: list[int] = []

        def send(i: int) -> None:
            response = signed_post(
                client, "acme", "shopify", ORDER, topic="orders/create", delivery_id=f"o{i}"
            )
            results.append(response.status_code)
            if response.status_code == 503:
                assert response.headers["retry-after"] == str(tight.retry_after_seconds)
                assert response.json()["error"]["code"] == "unavailable"

        threads = [threading.Thread(target=send, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads[:]:
            thread.join(0.5)
        release.set()
        for thread in threads:
            thread.join(10)
        assert 503 in results
        accepted = results.count(200)
        assert count(client, "SELECT count(*) FROM deliveries") == accepted


def test_database_failure_is_503_then_recovers(client: TestClient) -> None:
    con = service_of(client).con.cursor()
    con.execute("ALTER TABLE events RENAME TO events_away")
    response = signed_post(client, "acme", "shopify", ORDER, topic="orders/create", delivery_id="f")
    assert_error(response, 503, "unavailable")
    assert response.headers["retry-after"]
    assert client.get("/readyz").status_code == 503
    con.execute("ALTER TABLE events_away RENAME TO events")
    response = signed_post(client, "acme", "shopify", ORDER, topic="orders/create", delivery_id="f")
    assert response.status_code == 200 and response.json()["status"] == "stored"
    assert client.get("/readyz").status_code == 200
    assert count(client, "SELECT count(*) FROM deliveries") == 1


def test_every_error_has_the_same_shape(client: TestClient) -> None:
    assert_error(client.get("/no/such/route"), 404, "not_found")
    assert_error(client.get("/webhooks/acme"), 405, "method_not_allowed")


def test_operational_endpoints(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    signed_post(client, "acme", "shopify", ORDER, topic="orders/create", delivery_id="m")
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'shoppulse_deliveries_total{outcome="accepted",source="acme"} 1.0' in text
    assert "shoppulse_ack_latency_seconds_bucket" in text
    # the delivery's batch: one transaction holding one delivery
    assert "shoppulse_writer_commit_seconds_count 1.0" in text
    assert 'shoppulse_writer_batch_deliveries_bucket{le="1.0"} 1.0' in text
    signed_post(client, "acme", "shopify", ORDER, topic="orders/create", delivery_id="m2")
    text = client.get("/metrics").text
    assert 'shoppulse_deliveries_total{outcome="accepted",source="acme"} 2.0' in text
    assert "shoppulse_writer_commit_seconds_count 2.0" in text
    stats = client.get("/api/v1/ingest/stats").json()
    assert stats["totals"]["accepted"] == 2
    assert stats["last_delivery_at"]


def test_openapi_describes_the_prometheus_endpoint_as_text(client: TestClient) -> None:
    answer = client.get("/openapi.json").json()["paths"]["/metrics"]["get"]["responses"]["200"]
    assert list(answer["content"]) == ["text/plain"]


def test_counts_survive_a_restart(
    settings: Settings, sources: dict[str, Source], clock: FrozenClock
) -> None:
    with TestClient(create_app(settings, sources, clock=clock)) as client:
        signed_post(client, "acme", "shopify", ORDER, topic="orders/create", delivery_id="a")
        signed_post(client, "acme", "shopify", ORDER, topic="orders/create", delivery_id="a")
        signed_post(
            client, "acme", "shopify", ORDER, topic="orders/create", delivery_id="b", secret="bad"
        )
        signed_post(client, "acme", "shopify", b"{", topic="orders/create", delivery_id="c")
    with TestClient(create_app(settings, sources, clock=clock)) as client:
        totals = client.get("/api/v1/ingest/stats").json()["totals"]
    assert totals == {"accepted": 1, "duplicate": 1, "quarantined": 1, "rejected": 1}


def test_secrets_are_required_unless_insecure_demo(tmp_path: Path) -> None:
    config = tmp_path / "sources.toml"
    config.write_text('[[sources]]\nid = "shop"\nprovider = "shopify"\n')
    sources = load_sources(config)
    with pytest.raises(ConfigError, match="no secret"):
        check_secrets(sources, insecure_demo=False)
    assert check_secrets(sources, insecure_demo=True) == ["shop"]


@pytest.mark.parametrize(
    "text,message",
    [
        ('[[sources]]\nid = "Bad Id"\nprovider = "shopify"\nsecrets=["x"]\n', "sources.0.id"),
        ('[[sources]]\nid = "a"\nprovider = "magento"\nsecrets=["x"]\n', "unknown provider"),
        ('[[sources]]\nid = "a"\nprovider = "shopify"\nsecrets=["x"]\n' * 2, "appears twice"),
        ("not toml [", "not valid TOML"),
    ],
)
def test_config_errors_are_precise(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "sources.toml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_sources(config)


def test_insecure_demo_accepts_unsigned_only_for_sources_without_secret(
    settings: Settings, clock: FrozenClock
) -> None:
    sources = {
        "demo": Source.model_validate({"id": "demo", "provider": "shopify"}),
        "real": Source.model_validate({"id": "real", "provider": "shopify", "secrets": [SECRET]}),
    }
    demo = settings.model_copy(update={"insecure_demo": True})
    headers = {
        "content-type": "application/json",
        "x-shopify-topic": "orders/create",
        "x-shopify-webhook-id": "u1",
    }
    with TestClient(create_app(demo, sources, clock=clock)) as client:
        assert client.post("/webhooks/demo", content=ORDER, headers=headers).status_code == 200
        assert client.post("/webhooks/real", content=ORDER, headers=headers).status_code == 401
