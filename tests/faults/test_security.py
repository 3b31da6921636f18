"""The API token, and secrets that never leave the service: not in any answer, not in the log."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from ingest.sources import Source
from shoppulse.logs import JsonFormatter
from shoppulse.service import create_app
from shoppulse.settings import Settings
from tests.conftest import OTHER_SECRET, SECRET, FrozenClock, fixture_bytes, signed_post

TOKEN = "s3cr3t-api-token-for-tests"
ORDER = fixture_bytes("shopify", "orders_create.json")
PUBLIC = ["/healthz", "/readyz", "/openapi.json", "/docs", "/redoc"]


@pytest.fixture
def protected(
    settings: Settings, sources: dict[str, Source], clock: FrozenClock
) -> Iterator[TestClient]:
    secured = settings.model_copy(update={"api_token": SecretStr(TOKEN)})
    with TestClient(create_app(secured, sources, clock=clock)) as client:
        yield client


def get_routes(client: TestClient) -> list[str]:
    """Every GET path of the running app, path parameters filled in."""
    schema = client.get("/openapi.json").json()
    return sorted(
        path.replace("{source_id}", "acme")
        for path, operations in schema["paths"].items()
        if "get" in operations
    )


def test_every_read_endpoint_needs_the_token(protected: TestClient) -> None:
    routes = get_routes(protected)
    guarded = [path for path in routes if path not in PUBLIC]
    assert {"/api/v1/metrics", "/api/v1/ingest/stats", "/metrics"} <= set(guarded)
    for path in guarded:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            response = protected.get(path, headers=headers)
            assert response.status_code == 401, (path, headers, response.text)
            assert response.json() == {
                "error": {
                    "status": 401,
                    "code": "unauthorized",
                    "message": response.json()["error"]["message"],
                }
            }
            assert "Authorization: Bearer" in response.json()["error"]["message"]
            assert response.headers["www-authenticate"].startswith("Bearer")
        for scheme in ("Bearer", "bearer"):
            response = protected.get(path, headers={"Authorization": f"{scheme} {TOKEN}"})
            assert response.status_code != 401, (path, response.text)


def test_webhooks_probes_and_docs_stay_open(protected: TestClient) -> None:
    for path in PUBLIC:
        assert protected.get(path).status_code == 200, path
    response = signed_post(
        protected, "acme", "shopify", ORDER, topic="orders/create", delivery_id="open"
    )
    assert response.status_code == 200 and response.json()["status"] == "stored"
    # Only POST is open on the webhook path: anything else needs the token like the rest.
    assert protected.get("/webhooks/acme").status_code == 401
    authorized = {"Authorization": f"Bearer {TOKEN}"}
    assert protected.get("/webhooks/acme", headers=authorized).status_code == 405
    # Unknown paths need the token too: nothing tells a stranger what exists.
    assert protected.get("/api/v2/anything").status_code == 401


def test_without_a_token_everything_is_open(client: TestClient) -> None:
    for path in get_routes(client):
        assert client.get(path).status_code != 401, path


def test_the_token_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPPULSE_API_TOKEN", TOKEN)
    settings = Settings()
    assert settings.api_token is not None and settings.api_token.get_secret_value() == TOKEN
    assert TOKEN not in repr(settings) and TOKEN not in str(settings.model_dump())


def test_secrets_are_never_answered_or_logged(
    settings: Settings,
    sources: dict[str, Source],
    clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secured = settings.model_copy(update={"api_token": SecretStr(TOKEN)})
    secrets = [SECRET, OTHER_SECRET, TOKEN]
    caplog.set_level(logging.DEBUG)
    with TestClient(create_app(secured, sources, clock=clock)) as client:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        # Every outcome the log knows: stored, duplicate, quarantined, rejected (several ways).
        for delivery_id in ("s1", "s1"):
            signed_post(
                client, "acme", "shopify", ORDER, topic="orders/create", delivery_id=delivery_id
            )
        signed_post(client, "acme", "shopify", b"{", topic="orders/create", delivery_id="q1")
        signed_post(
            client, "acme", "shopify", ORDER, topic="orders/create", delivery_id="x", secret="bad"
        )
        client.post("/webhooks/acme", content=ORDER, headers={"content-type": "text/plain"})
        client.post("/webhooks/nope", content=ORDER)
        client.get("/api/v1/metrics", headers={"Authorization": "Bearer guess"})
        answers: list[Any] = [client.get(path, headers=auth).text for path in get_routes(client)]
        answers.append(client.get("/openapi.json").text)
    formatter = JsonFormatter()
    logged = [formatter.format(record) for record in caplog.records]
    assert any('"outcome":"rejected"' in line for line in logged)
    for secret in secrets:
        for text in answers + logged:
            assert secret not in text
