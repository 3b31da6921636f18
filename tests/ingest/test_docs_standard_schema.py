"""docs/standard-webhooks.md cannot go stale: its JSON Schema, example and code are tested."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ingest.events import StandardEventBody
from ingest.providers import PROVIDERS
from ingest.providers.standard import StandardWebhooks
from ingest.sources import load_sources
from tests.conftest import FIXTURES, fixture_json

DOC = Path(__file__).resolve().parents[2] / "docs" / "standard-webhooks.md"


def block(marker: str, language: str) -> str:
    """The fenced code block that follows `<!-- standard-webhooks:<marker> -->`."""
    text = DOC.read_text(encoding="utf-8")
    pattern = rf"<!-- standard-webhooks:{marker} -->\n```{language}\n(.*?)\n```"
    found = re.findall(pattern, text, flags=re.DOTALL)
    assert len(found) == 1, f"expected one {language} block after the '{marker}' marker"
    return str(found[0])


def test_embedded_json_schema_equals_the_model() -> None:
    assert json.loads(block("schema", "json")) == StandardEventBody.model_json_schema()


def test_example_body_is_valid_and_is_the_fixture() -> None:
    example = json.loads(block("example", "json"))
    assert example == fixture_json("standard", "events.json")
    body = StandardEventBody.model_validate(example)
    assert [event.kind for event in body.events] == ["cart", "checkout", "order", "refund"]


def test_signing_code_reproduces_the_published_vector_and_verifies() -> None:
    vectors = json.loads((FIXTURES / "signatures.json").read_text())["vectors"]
    [vector] = [v for v in vectors if v["id"] == "standard-webhooks-sign-v1"]
    namespace: dict[str, Any] = {}
    exec(block("sign", "python"), namespace)
    msg_id = vector["headers"]["webhook-id"]
    stamp = int(vector["headers"]["webhook-timestamp"])
    body = vector["payload"].encode()
    headers = namespace["sign"](vector["secret"], msg_id, stamp, body)
    assert headers["webhook-signature"] == vector["expected_signature"]
    lowered = {name.lower(): value for name, value in headers.items()}
    StandardWebhooks().verify(body, lowered, [vector["secret"]], datetime.fromtimestamp(stamp, UTC))


def test_the_vector_quoted_in_the_prose_is_the_published_one() -> None:
    vectors = json.loads((FIXTURES / "signatures.json").read_text())["vectors"]
    [vector] = [v for v in vectors if v["id"] == "standard-webhooks-sign-v1"]
    text = DOC.read_text(encoding="utf-8")
    quoted = (
        vector["secret"],
        vector["headers"]["webhook-id"],
        vector["headers"]["webhook-timestamp"],
        vector["payload"],
        vector["expected_signature"],
    )
    for value in quoted:
        assert f"`{value}`" in text


def test_toml_examples_of_the_connect_docs_are_valid_sources(tmp_path: Path) -> None:
    """Every sources example in the connection docs loads, with a known provider."""
    seen = set()
    for name in ("connect-your-store.md", "standard-webhooks.md"):
        text = (DOC.parent / name).read_text(encoding="utf-8")
        for index, example in enumerate(re.findall(r"```toml\n(.*?)\n```", text, re.DOTALL)):
            path = tmp_path / f"{name}-{index}.toml"
            path.write_text(example, encoding="utf-8")
            for source in load_sources(path).values():
                assert source.secret_values()
                seen.add(source.provider)
    assert seen == set(PROVIDERS)
