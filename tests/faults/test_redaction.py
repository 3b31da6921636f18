"""`redact_personal_data`: customer fields never reach the stored body; metrics do not change."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ingest.redaction import PERSONAL_FIELDS, REDACTED, redact, redacted_body
from ingest.storage.body_codec import unpack
from tests.fuzz.adapters import PROVIDER_NAMES, Sample, samples, service, sign
from tests.helpers.app import rows, service_of, stored_figures

EMAIL = re.compile(rb"[\w.+-]+@[\w-]+\.[\w.-]+")
SAMPLES = [sample for provider in PROVIDER_NAMES for sample in samples(provider)]


def personal_values(node: Any, inside: bool = False) -> set[str]:
    """Every string or number found under a personal field of a payload."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            found |= personal_values(value, inside or key.lower() in PERSONAL_FIELDS)
    elif isinstance(node, list):
        for item in node:
            found |= personal_values(item, inside)
    elif inside and isinstance(node, str | int | float) and not isinstance(node, bool):
        found.add(str(node))
    return found


def send_all(client: TestClient) -> dict[str, Sample]:
    """Post every sample; return which sample each stored delivery id came from."""
    sent: dict[str, Sample] = {}
    for index, sample in enumerate(SAMPLES):
        headers = sign(sample.provider, sample.body, topic=sample.topic, delivery_id=f"d{index}")
        response = client.post(f"/webhooks/{sample.provider}", content=sample.body, headers=headers)
        assert response.status_code in (200, 202), (sample.name, response.text)
        sent[response.json()["delivery_id"]] = sample
    return sent


def snapshot(client: TestClient) -> dict[str, Any]:
    service_of(client).worker.fold_now()
    events = rows(
        client,
        "SELECT * EXCLUDE (event_seq, delivery_seq) FROM events ORDER BY event_seq",
    )
    statuses = rows(client, "SELECT delivery_id, status, reason FROM deliveries ORDER BY 1")
    return {"events": events, "deliveries": statuses, "figures": stored_figures(client)}


def stored_bodies(client: TestClient) -> dict[str, tuple[str, bytes]]:
    found = rows(client, "SELECT delivery_id, status, body, body_codec FROM deliveries")
    return {row[0]: (row[1], unpack(row[2], row[3]) or b"") for row in found if row[2] is not None}


def test_redaction_changes_the_stored_bodies_but_not_the_metrics(tmp_path: Path) -> None:
    with service(tmp_path / "plain") as client:
        send_all(client)
        plain = snapshot(client)
    with service(tmp_path / "redacted", redact_personal_data=True) as client:
        by_id = send_all(client)
        redacted = snapshot(client)
        kept = stored_bodies(client)
    assert redacted == plain
    assert plain["events"], "the samples produced no events"
    accepted = {key: body for key, (status, body) in kept.items() if status == "accepted"}
    checked = 0
    for delivery_id, body in accepted.items():
        sample: Sample = by_id[delivery_id]
        original = sample.payload()
        assert EMAIL.search(body) is None, (sample.name, EMAIL.search(body))
        secrets = {value for value in personal_values(original) if len(value) >= 5}
        leaked = sorted(value for value in secrets if value.encode() in body)
        assert not leaked, (sample.name, leaked[:5])
        checked += bool(secrets)
        if secrets:
            assert REDACTED.encode() in body
        assert json.loads(body) == redact(original)
    assert checked >= 5, "too few samples carried personal data to test redaction"


def test_without_redaction_the_body_is_stored_byte_for_byte(tmp_path: Path) -> None:
    sample = next(s for s in SAMPLES if EMAIL.search(s.body))
    with service(tmp_path) as client:
        headers = sign(sample.provider, sample.body, topic=sample.topic, delivery_id="raw")
        assert client.post(f"/webhooks/{sample.provider}", content=sample.body, headers=headers)
        assert stored_bodies(client)["raw"] == ("accepted", sample.body)


def test_quarantined_bodies_are_kept_as_received_for_replay(tmp_path: Path) -> None:
    """A documented limit: quarantine keeps the exact bytes so the delivery can be replayed."""
    sample = next(s for s in SAMPLES if s.provider == "shopify" and EMAIL.search(s.body))
    with service(tmp_path, redact_personal_data=True) as client:
        headers = sign("shopify", sample.body, topic="no/such-topic", delivery_id="q")
        response = client.post("/webhooks/shopify", content=sample.body, headers=headers)
        assert response.status_code == 202
        assert stored_bodies(client)["q"] == ("quarantined", sample.body)


@pytest.mark.parametrize(
    "payload,expected",
    [
        (
            {"Email": "a@b.example", "order": {"customer": {"id": 1, "email": "c@d.example"}}},
            {"Email": REDACTED, "order": {"customer": REDACTED}},
        ),
        (
            [{"billing_address": {"city": "Oslo"}, "line_items": [{"note": "gift"}]}],
            [{"billing_address": REDACTED, "line_items": [{"note": REDACTED}]}],
        ),
        ({"name": "#1001", "id": 7}, {"name": "#1001", "id": 7}),
    ],
)
def test_redact_replaces_personal_fields_at_any_depth(payload: Any, expected: Any) -> None:
    assert redact(payload) == expected


def test_redacted_body_handles_the_deepest_accepted_json() -> None:
    deep: Any = {"email": "x@y.example"}
    for _ in range(1000):  # deeper than orjson writes (255) and close to what it reads (1024)
        deep = {"a": deep}
    body = redacted_body(deep)
    assert body is None or b"x@y.example" not in body
