"""The webhook endpoint answered ahead of FastAPI's router: same answers, same error bodies."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from shoppulse.webhook_route import webhook_source
from tests.conftest import fixture_bytes, signed_post
from tests.ingest.test_intake import assert_error

ORDER = fixture_bytes("shopify", "orders_create.json")


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("POST", "/webhooks/acme", "acme"),
        ("POST", "/webhooks/shop with space", "shop with space"),
        ("POST", "/webhooks/", None),
        ("POST", "/webhooks/a/b", None),
        ("POST", "/webhooksx/acme", None),
        ("GET", "/webhooks/acme", None),
        ("POST", "/api/v1/metrics", None),
    ],
)
def test_only_webhook_posts_take_the_fast_path(
    method: str, path: str, expected: str | None
) -> None:
    scope = {"type": "http", "method": method, "path": path}
    assert webhook_source(scope) == expected


def test_lookalike_requests_get_fastapi_answers_in_the_common_error_shape(
    client: TestClient,
) -> None:
    assert_error(client.post("/webhooks/", content=b"{}"), 404, "not_found")
    assert_error(client.post("/webhooks/shop/extra", content=b"{}"), 404, "not_found")
    assert_error(client.get("/webhooks/shop"), 405, "method_not_allowed")


def test_fast_path_answers_match_the_declared_route(client: TestClient) -> None:
    stored = signed_post(
        client, "acme", "shopify", ORDER, topic="orders/create", delivery_id="fast-1"
    )
    assert stored.status_code == 200 and stored.json()["status"] == "stored"
    assert stored.headers["content-type"] == "application/json"
    assert_error(client.post("/webhooks/nope", content=ORDER), 404, "unknown_source")
    assert_error(
        client.post("/webhooks/acme", content=ORDER, headers={"content-type": "application/json"}),
        401,
        "invalid_signature",
    )
    # the route is still described in the OpenAPI document
    spec = client.get("/openapi.json").json()
    assert "post" in spec["paths"]["/webhooks/{source_id}"]
