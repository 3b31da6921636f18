"""Every registered adapter, a secret each accepts, and its real sample payloads, signed.

Tests iterate `PROVIDERS` (ingest.providers' registry), so a new adapter is covered as soon as it
is registered; its samples are whatever lies in tests/fixtures/webhooks/<provider>/.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from ingest.providers import PROVIDERS, get_provider
from shoppulse.service import create_app
from shoppulse.settings import Settings
from tests.conftest import WEBHOOKS, FrozenClock, make_source

#: Accepted by every adapter: Standard Webhooks wants `whsec_<base64>`; the others use the string.
SECRET = "whsec_" + base64.b64encode(b"shoppulse-fuzz-key-0001").decode()
WRONG_SECRET = "whsec_" + base64.b64encode(b"someone-else-0001").decode()

#: The service clock of these tests: after every sample's own dates.
NOW = datetime(2026, 6, 1, tzinfo=UTC)
TIMESTAMP = int(NOW.timestamp())

PROVIDER_NAMES = sorted(PROVIDERS)


@dataclass(frozen=True)
class Sample:
    provider: str
    name: str
    topic: str
    body: bytes

    def payload(self) -> Any:
        return json.loads(self.body)


def _squash(name: str) -> str:
    return name.replace("/", "_").replace(".", "_").lower()


def topic_for(provider: str, fixture_name: str) -> str:
    """The topic a sample file is named after (`orders_create.json` -> `orders/create`)."""
    stem = _squash(fixture_name.removesuffix(".json"))
    topics = sorted(PROVIDERS[provider].topics)
    for topic in topics:
        if _squash(topic) == stem:
            return topic
    return topics[0]


def samples(provider: str) -> list[Sample]:
    """The provider's real sample payloads (header captures left out)."""
    folder = WEBHOOKS / provider
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        if path.name.endswith(".headers.json"):
            continue
        found.append(Sample(provider, path.name, topic_for(provider, path.name), path.read_bytes()))
    return found


def sign(
    provider: str,
    body: bytes,
    *,
    topic: str,
    delivery_id: str,
    secret: str = SECRET,
    timestamp: int = TIMESTAMP,
) -> dict[str, str]:
    """The headers the platform would send with `body`."""
    return get_provider(provider).sign(
        body, secret, topic=topic, delivery_id=delivery_id, timestamp=timestamp
    )


@contextmanager
def service(
    db_dir: Path, *, clock: FrozenClock | None = None, **overrides: Any
) -> Iterator[TestClient]:
    """The real app with one source per registered provider (source id = provider name)."""
    settings = Settings(db_path=db_dir / "shoppulse.duckdb", batch_linger_ms=0.5, **overrides)
    sources = {name: make_source(name, name, SECRET) for name in PROVIDER_NAMES}
    app = create_app(settings, sources, clock=clock or FrozenClock(NOW))
    with TestClient(app) as client:
        yield client
