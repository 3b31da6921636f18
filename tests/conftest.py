"""Shared test fixtures: a real DuckDB file under tmp_path and the real app."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import settings as hypothesis_settings

from ingest.providers import get_provider
from ingest.sources import Source
from shoppulse.service import create_app
from shoppulse.settings import Settings

# `HYPOTHESIS_PROFILE=thorough pytest ...` runs ten times more property examples.
hypothesis_settings.register_profile("default", max_examples=30, deadline=None)
hypothesis_settings.register_profile("thorough", max_examples=300, deadline=None)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

FIXTURES = Path(__file__).parent / "fixtures"
WEBHOOKS = FIXTURES / "webhooks"

SECRET = "test-secret-1"
OTHER_SECRET = "test-secret-2"


def fixture_bytes(platform: str, name: str) -> bytes:
    return (WEBHOOKS / platform / name).read_bytes()


def fixture_json(platform: str, name: str) -> Any:
    return json.loads(fixture_bytes(platform, name))


class FrozenClock:
    """A clock tests move by hand."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def make_source(source_id: str, provider: str, *secrets: str) -> Source:
    return Source.model_validate({"id": source_id, "provider": provider, "secrets": list(secrets)})


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "shoppulse.duckdb"


@pytest.fixture
def settings(db_path: Path) -> Settings:
    return Settings(db_path=db_path, batch_linger_ms=0.5)


@pytest.fixture
def sources() -> dict[str, Source]:
    return {"acme": make_source("acme", "shopify", SECRET, OTHER_SECRET)}


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def client(
    settings: Settings, sources: dict[str, Source], clock: FrozenClock
) -> Iterator[TestClient]:
    app = create_app(settings, sources, clock=clock)
    with TestClient(app) as test_client:
        yield test_client


def signed_post(
    client: TestClient,
    source_id: str,
    provider: str,
    body: bytes,
    *,
    topic: str,
    delivery_id: str,
    secret: str = SECRET,
    timestamp: int | None = None,
    extra_headers: dict[str, str] | None = None,
) -> Any:
    """Sign `body` the way the platform does and POST it through the real app."""
    ts = timestamp if timestamp is not None else int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
    headers = get_provider(provider).sign(
        body, secret, topic=topic, delivery_id=delivery_id, timestamp=ts
    )
    headers.update(extra_headers or {})
    return client.post(f"/webhooks/{source_id}", content=body, headers=headers)
