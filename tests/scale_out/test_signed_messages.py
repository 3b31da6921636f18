"""The store trusts only what intake verified: messages on the log without intake's signature are
quarantined (never folded, never replayed), so write access to the log is not write access to the
figures. Real nats-server, real DuckDB file, the real apps through FastAPI's TestClient."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from typer.testing import CliRunner

from ingest.sources import load_sources_file
from shoppulse.cli import app
from shoppulse.scale_out import envelope
from shoppulse.scale_out.connection import connect
from shoppulse.scale_out.intake_app import create_intake_app
from shoppulse.scale_out.settings import LogSettings
from shoppulse.scale_out.signing import HEADER, LogSigner
from shoppulse.scale_out.store_app import create_store_app
from shoppulse.scale_out.stream import delivery_subject, rejection_subject
from shoppulse.settings import Settings
from tests.conftest import SECRET, FrozenClock, make_source
from tests.e2e.server import write_sources
from tests.helpers.waiting import wait_for
from tests.scale_out.nats import NatsNode
from tests.scale_out.signed import SIGNING_KEY, signed_settings
from tests.scale_out.stream_reader import read_stream
from tests.scale_out.traffic import START, post, simulated

pytestmark = pytest.mark.timeout(90)

SOURCES = {"acme": make_source("acme", "shopify", SECRET)}
OTHER_KEY = "a-key-that-is-not-in-the-sources-file-0123456789"

runner = CliRunner()


def clock() -> FrozenClock:
    return FrozenClock(START + timedelta(days=1))


@contextmanager
def store(url: str, db: Path) -> Iterator[TestClient]:
    app = create_store_app(
        Settings(db_path=db, batch_linger_ms=0.5), signed_settings(url=url), SOURCES, clock=clock()
    )
    with TestClient(app) as client:
        yield client


def publish(url: str, messages: list[tuple[str, bytes, dict[str, str]]]) -> None:
    """Write straight to the log, as anyone with write access to it could."""

    async def run() -> None:
        nc = await connect(LogSettings(url=url), name="test-writer")
        try:
            js = nc.jetstream(timeout=5.0)
            for subject, data, headers in messages:
                await js.publish(subject, data, headers=headers or None)
        finally:
            await nc.close()

    asyncio.run(run())


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_messages_intake_did_not_sign_are_quarantined_and_never_folded(
    nats_node: NatsNode, tmp_path: Path
) -> None:
    genuine, later = simulated(3)[0:3:2]
    settings = Settings(db_path=tmp_path / "unused.duckdb")
    with TestClient(
        create_intake_app(settings, signed_settings(url=nats_node.url), SOURCES, clock())
    ) as replica:
        assert post(replica, genuine).status_code == 200
    [signed] = read_stream(nats_node.url)

    # What a writer without the key can put on the log: a well-formed delivery message (of a
    # delivery id a genuine delivery will use later), one signed with another key, intake's
    # message with its body changed, and intake's signature moved to another source's subject.
    subject = delivery_subject("acme")
    forged = envelope.encode(
        dataclasses.replace(envelope.decode(signed.data), delivery_id=later.delivery_id)
    )
    other = LogSigner((SecretStr(OTHER_KEY),))
    tampered = signed.data + b"\n"
    signature = LogSigner((SecretStr(SIGNING_KEY),)).sign(subject, signed.msg_id or "", signed.data)
    publish(
        nats_node.url,
        [
            (subject, forged, {"Nats-Msg-Id": "f1"}),
            (subject, forged + b"\n", other.headers(subject, "f2", forged + b"\n")),
            (subject, tampered, {"Nats-Msg-Id": "f5", HEADER: signature}),
            (delivery_subject("beta"), signed.data, {"Nats-Msg-Id": "f3", HEADER: signature}),
            (subject, b"not even a delivery message", {"Nats-Msg-Id": "f4"}),
            (rejection_subject("acme"), envelope.encode_counts("x", {("rejected", "x"): 9}), {}),
        ],
    )
    db = tmp_path / "store" / "shoppulse.duckdb"
    with store(nats_node.url, db) as client:
        wait_for(
            lambda: client.get("/api/v1/ingest/stats").json()["log"]["behind"] == 0,
            "the store caught up",
        )
        stats = client.get("/api/v1/ingest/stats").json()["sources"]["acme"]
        assert (stats["accepted"], stats["quarantined"], stats["rejected"]) == (1, 4, 0)
        figures = client.get("/api/v1/metrics?source=acme").json()
        replay = client.post("/api/v1/ingest/replay", json={}).json()
        assert client.get("/api/v1/metrics?source=acme").json() == figures
    assert replay["moved"] == 0  # replay never moves an unverified message into the figures

    stored = rows(db, "SELECT source, delivery_id, status, reason FROM deliveries ORDER BY 2")
    assert ("acme", genuine.delivery_id, "accepted", None) in stored
    unverified = [row for row in stored if row[2] == "quarantined"]
    assert len(unverified) == 5  # four on acme, one on beta
    for _, delivery_id, _, reason in unverified:
        assert delivery_id.startswith("unverified:")
        assert reason.startswith("unverified log message: ")
    reasons = " | ".join(str(row[3]) for row in unverified)
    assert "no intake signature" in reasons
    assert "an intake signature that no signing key verifies" in reasons
    assert f"it claims delivery {later.delivery_id!r}" in reasons
    assert {row[0] for row in unverified} == {"acme", "beta"}
    folded = rows(
        db,
        "SELECT DISTINCT d.delivery_id FROM events e JOIN deliveries d USING (delivery_seq)",
    )
    assert folded == [(genuine.delivery_id,)]  # only intake's delivery made events

    # The genuine delivery whose id a forged message claimed is still stored when it comes.
    with TestClient(
        create_intake_app(settings, signed_settings(url=nats_node.url), SOURCES, clock())
    ) as replica:
        assert post(replica, later).status_code in (200, 202)
    with store(nats_node.url, db) as client:
        wait_for(
            lambda: client.get("/api/v1/ingest/stats").json()["log"]["behind"] == 0,
            "the store caught up again",
        )
    stored_ids = {(r[0], r[1]) for r in rows(db, "SELECT source, delivery_id FROM deliveries")}
    assert ("acme", later.delivery_id) in stored_ids


def test_roles_refuse_to_start_without_a_signing_key_and_keygen_adds_one(
    nats_node: NatsNode, tmp_path: Path
) -> None:
    config = write_sources(tmp_path / "sources.toml", {"acme": ("shopify", SECRET)})
    for command in (
        ["intake", "--config", str(config), "--log", nats_node.url],
        ["store", "--config", str(config), "--db", "s.duckdb", "--log", nats_node.url],
    ):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, result.output
        text = " ".join(result.output.split())
        assert "no log signing key" in text and "shoppulse log keygen --config FILE" in text

    for _ in range(3):
        result = runner.invoke(app, ["log", "keygen", "--config", str(config)])
        assert result.exit_code == 0, result.output
    keys = [k.get_secret_value() for k in load_sources_file(config).log.signing_keys]
    assert len(keys) == 2 and len(set(keys)) == 2  # the new one first, the previous one kept
    assert all(len(key) >= 32 for key in keys)
    assert keys[0] not in result.output  # never printed
