"""Personal data in the log: intake redacts before it publishes, and the stream forgets messages
after its maximum age (7 days unless set). Real nats-server, the real intake app."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from nats.js.api import DiscardPolicy, StreamConfig
from typer.testing import CliRunner

from ingest.redaction import REDACTED
from shoppulse.cli import app
from shoppulse.scale_out import envelope
from shoppulse.scale_out.intake_app import create_intake_app
from shoppulse.scale_out.settings import STREAM
from shoppulse.scale_out.stream import SUBJECTS
from shoppulse.settings import Settings
from tests.conftest import SECRET, FrozenClock, make_source
from tests.scale_out.nats import NatsNode
from tests.scale_out.roles import sources_file
from tests.scale_out.signed import signed_settings
from tests.scale_out.stream_reader import read_stream
from tests.scale_out.test_log_init import add_stream, stream_config
from tests.scale_out.traffic import START, post, simulated

pytestmark = pytest.mark.timeout(60)

SOURCES = {"acme": make_source("acme", "shopify", SECRET)}
EMAIL = re.compile(rb"[\w.+-]+@[\w-]+\.[\w.]+")

runner = CliRunner()


def published(url: str, tmp_path: Path, *, redact: bool) -> list[bytes]:
    """The bodies intake put on the log for the simulator's orders (accepted ones)."""
    settings = Settings(db_path=tmp_path / "unused.duckdb", redact_personal_data=redact)
    deliveries = [d for d in simulated(60) if d.topic.startswith("orders/")]
    clock = FrozenClock(START + timedelta(days=1))
    with TestClient(create_intake_app(settings, signed_settings(url=url), SOURCES, clock)) as r:
        statuses = [post(r, delivery).json()["status"] for delivery in deliveries]
    assert "stored" in statuses
    bodies = []
    for message in read_stream(url):
        if not message.subject.startswith("shoppulse.deliveries."):
            continue  # rejection counts
        delivery = envelope.decode(message.data)
        if delivery.reason is None and delivery.body is not None:
            bodies.append(delivery.body)
    return bodies


def test_intake_redacts_personal_data_before_publishing(
    nats_node: NatsNode, tmp_path: Path
) -> None:
    bodies = published(nats_node.url, tmp_path, redact=True)
    assert bodies
    assert not [body for body in bodies if EMAIL.search(body)]
    assert all(REDACTED.encode() in body for body in bodies)


def test_without_redaction_the_log_holds_the_customers_data(
    nats_node: NatsNode, tmp_path: Path
) -> None:
    """The counterpart: the same orders carry e-mail addresses when redaction is off."""
    bodies = published(nats_node.url, tmp_path, redact=False)
    assert any(EMAIL.search(body) for body in bodies)


def test_the_stream_keeps_messages_seven_days_unless_told(bare_nats: NatsNode) -> None:
    result = runner.invoke(app, ["log", "init", "--log", bare_nats.url])
    assert result.exit_code == 0, result.output
    assert "messages kept 7 days" in " ".join(result.output.split())
    assert stream_config(bare_nats.url).max_age == 7 * 86400
    result = runner.invoke(app, ["log", "init", "--log", bare_nats.url, "--max-age-days", "2"])
    assert result.exit_code == 0, result.output
    assert "max_age 604800.0 -> 172800.0" in " ".join(result.output.split())
    assert stream_config(bare_nats.url).max_age == 2 * 86400


def test_roles_refuse_a_stream_that_keeps_messages_forever(
    bare_nats: NatsNode, tmp_path: Path
) -> None:
    add_stream(
        bare_nats.url,
        StreamConfig(
            name=STREAM, subjects=list(SUBJECTS), discard=DiscardPolicy.NEW, duplicate_window=120.0
        ),
    )
    config = sources_file(tmp_path, {"acme": ("shopify", SECRET)})
    result = runner.invoke(app, ["intake", "--config", str(config), "--log", bare_nats.url])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "keeps messages forever (no maximum age)" in text
    assert "shoppulse log init" in text
