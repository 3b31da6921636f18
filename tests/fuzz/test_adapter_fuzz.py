"""Hostile bodies and headers for every registered adapter, through the real app.

For each provider in ingest.providers.PROVIDERS (a new adapter is covered once registered):

- authentic deliveries (signed with the adapter's own `sign`) with hostile bodies and random extra
  headers are answered 200 (stored or duplicate) or 202 (quarantined), never anything else, and
  each is in the database: accepted with its events, or quarantined with a non-empty reason and
  no events; the incremental metrics still equal a full recompute afterwards;
- inauthentic ones (no signature, a wrong secret, a garbage signature, a body changed after
  signing) get 401, store nothing, and leave every metric unchanged.

`HYPOTHESIS_PROFILE=thorough` runs ten times as many cases.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.providers import PROVIDERS
from tests.fuzz.adapters import (
    PROVIDER_NAMES,
    WRONG_SECRET,
    samples,
    service,
    sign,
)
from tests.fuzz.strategies import DELIVERY_IDS, TOPICS, bodies, extra_headers
from tests.helpers.app import rows, stored_figures

pytestmark = pytest.mark.timeout(300)

#: Cases per provider and test: the profile's default (30, or 300 when thorough).
EXAMPLES = settings().max_examples
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: Headers a random extra header may not replace: the framing and the content type.
FRAMING = {"content-type", "content-length", "transfer-encoding", "connection", "expect", "host"}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One app for the module: a source per provider (source id = provider name)."""
    with service(tmp_path_factory.mktemp("adapter-fuzz")) as app_client:
        yield app_client


def reserved(provider: str) -> set[str]:
    signed = sign(provider, b"{}", topic="t", delivery_id="d")
    return FRAMING | {name.lower() for name in signed}


def counts(client: TestClient, source: str) -> tuple[int, int]:
    [(deliveries, events)] = rows(
        client,
        "SELECT (SELECT count(*) FROM deliveries WHERE source = ?), "
        "(SELECT count(*) FROM events WHERE source = ?)",
        [source, source],
    )
    return int(deliveries), int(events)


def check_stored_or_quarantined(client: TestClient, provider: str, response: Any) -> str:
    """Assert the answer to an authentic delivery and what the database holds; its status."""
    assert response.status_code in (200, 202), response.text
    answer = response.json()
    if answer["status"] == "ping":
        return "ping"
    stored = rows(
        client,
        "SELECT d.status, d.reason, d.event_count, "
        "(SELECT count(*) FROM events e WHERE e.delivery_seq = d.delivery_seq) "
        "FROM deliveries d WHERE d.source = ? AND d.delivery_id = ?",
        [provider, answer["delivery_id"]],
    )
    assert len(stored) == 1, answer
    status, reason, event_count, events = stored[0]
    assert event_count == events
    if response.status_code == 202:
        assert answer["status"] == "quarantined" and status == "quarantined"
        assert reason and answer["reason"] == reason
        assert events == 0
    else:
        assert answer["status"] in ("stored", "duplicate"), answer
        if answer["status"] == "stored":
            assert status == "accepted" and reason is None
            assert events == answer["events"]
    return str(answer["status"])


@pytest.mark.parametrize("provider", PROVIDER_NAMES)
def test_authentic_hostile_deliveries_are_stored_or_quarantined(
    provider: str, client: TestClient, fuzz_cases: Counter[str]
) -> None:
    sample_list = samples(provider)
    topics = sorted(PROVIDERS[provider].topics)
    seen: Counter[str] = Counter()
    for index, sample in enumerate(sample_list):  # the intact samples are stored
        headers = sign(provider, sample.body, topic=sample.topic, delivery_id=f"intact-{index}")
        response = client.post(f"/webhooks/{provider}", content=sample.body, headers=headers)
        seen[check_stored_or_quarantined(client, provider, response)] += 1
    assert not sample_list or seen["stored"] > 0, seen

    @FUZZ
    @given(
        body=bodies([sample.body for sample in sample_list]),
        topic=st.sampled_from(topics) | TOPICS,
        delivery_id=DELIVERY_IDS,
        extra=extra_headers(reserved(provider)),
    )
    def run(body: bytes, topic: str, delivery_id: str, extra: dict[str, bytes]) -> None:
        signed = sign(provider, body, topic=topic, delivery_id=delivery_id)
        headers: dict[str, Any] = {**extra, **signed}
        response = client.post(f"/webhooks/{provider}", content=body, headers=headers)
        fuzz_cases[f"adapter {provider}: authentic"] += 1
        seen[check_stored_or_quarantined(client, provider, response)] += 1

    run()
    check = client.get("/api/v1/metrics/check").json()
    assert check["equal"], check
    assert seen["quarantined"] > 0, seen  # hostile input did reach the quarantine


def tamper(body: bytes) -> bytes:
    return body[:-1] + bytes([body[-1] ^ 0x01]) if body else b" "


def forge(
    provider: str, body: bytes, topic: str, delivery_id: str, how: str, garbage: str
) -> tuple[bytes, dict[str, str]]:
    """The body and headers of an inauthentic delivery, forged the way `how` says."""
    signed = sign(provider, body, topic=topic, delivery_id=delivery_id)
    if how == "unsigned":
        return body, {"Content-Type": "application/json"}
    if how == "wrong secret":
        return body, sign(provider, body, topic=topic, delivery_id=delivery_id, secret=WRONG_SECRET)
    if how == "garbage signature":
        return body, {
            name: garbage if ("signature" in name.lower() or "hmac" in name.lower()) else value
            for name, value in signed.items()
        }
    return tamper(body), signed


@pytest.mark.parametrize("provider", PROVIDER_NAMES)
def test_inauthentic_deliveries_are_401_and_change_nothing(
    provider: str, client: TestClient, fuzz_cases: Counter[str]
) -> None:
    adapter = PROVIDERS[provider]
    sample_list = samples(provider)
    topics = sorted(adapter.topics)
    for index, sample in enumerate(sample_list):  # real data, so the figures are not all zero
        headers = sign(provider, sample.body, topic=sample.topic, delivery_id=f"seed-{index}")
        response = client.post(f"/webhooks/{provider}", content=sample.body, headers=headers)
        assert response.status_code in (200, 202), response.text
    before = stored_figures(client)
    stored_before = counts(client, provider)
    rejected_before = rejected(client, provider)

    @FUZZ
    @given(
        body=bodies([sample.body for sample in sample_list]),
        topic=st.sampled_from(topics) | TOPICS,
        delivery_id=DELIVERY_IDS,
        how=st.sampled_from(["unsigned", "wrong secret", "garbage signature", "tampered"]),
        garbage=st.text(
            alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=120
        ),
        extra=extra_headers(reserved(provider)),
    )
    def run(
        body: bytes, topic: str, delivery_id: str, how: str, garbage: str, extra: dict[str, bytes]
    ) -> None:
        sent, forged = forge(provider, body, topic, delivery_id, how, garbage)
        headers: dict[str, Any] = {**extra, **forged}
        response = client.post(f"/webhooks/{provider}", content=sent, headers=headers)
        fuzz_cases[f"adapter {provider}: inauthentic"] += 1
        if adapter.is_ping(sent, {name.lower(): value for name, value in forged.items()}):
            assert response.status_code == 200 and response.json()["stored"] is False
            return
        assert response.status_code == 401, response.text
        error = response.json()["error"]
        assert error["code"] == "invalid_signature" and error["message"]

    run()
    assert counts(client, provider) == stored_before
    assert stored_figures(client) == before
    assert rejected(client, provider) > rejected_before


def rejected(client: TestClient, provider: str) -> int:
    stats = client.get("/api/v1/ingest/stats").json()["sources"].get(provider, {})
    return int(stats.get("rejected_by_reason", {}).get("invalid_signature", 0))
