"""`shoppulse log init` and the check every role makes at start, against a real nats-server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from nats.js.api import DiscardPolicy, StorageType, StreamConfig
from typer.testing import CliRunner

from shoppulse.cli import app
from shoppulse.scale_out.connection import connect
from shoppulse.scale_out.settings import STREAM, LogSettings
from shoppulse.scale_out.stream import SUBJECTS
from tests.conftest import SECRET
from tests.helpers.ports import free_port
from tests.scale_out.nats import NatsNode
from tests.scale_out.roles import sources_file

pytestmark = pytest.mark.timeout(60)

runner = CliRunner()


def stream_config(url: str) -> StreamConfig:
    async def read() -> StreamConfig:
        nc = await connect(LogSettings(url=url), name="test")
        try:
            return (await nc.jetstream().stream_info(STREAM)).config
        finally:
            await nc.close()

    return asyncio.run(read())


def add_stream(url: str, config: StreamConfig) -> None:
    async def add() -> None:
        nc = await connect(LogSettings(url=url), name="test")
        try:
            await nc.jetstream().add_stream(config)
        finally:
            await nc.close()

    asyncio.run(add())


def test_log_init_creates_the_stream_once_and_updates_it(bare_nats: NatsNode) -> None:
    first = runner.invoke(app, ["log", "init", "--log", bare_nats.url, "--max-bytes", "64MiB"])
    assert first.exit_code == 0, first.output
    assert "stream SHOPPULSE created" in first.output
    config = stream_config(bare_nats.url)
    assert sorted(config.subjects or []) == sorted(SUBJECTS)
    assert config.storage == StorageType.FILE
    assert config.discard == DiscardPolicy.NEW
    assert config.max_bytes == 64 * 1024**2
    assert config.num_replicas == 1
    assert config.duplicate_window == pytest.approx(120.0)

    again = runner.invoke(app, ["log", "init", "--log", bare_nats.url, "--max-bytes", "64MiB"])
    assert again.exit_code == 0, again.output
    assert "stream SHOPPULSE unchanged" in again.output

    bigger = runner.invoke(
        app,
        ["log", "init", "--log", bare_nats.url, "--max-bytes", "1GiB", "--duplicate-window", "60"],
    )
    assert bigger.exit_code == 0, bigger.output
    assert "stream SHOPPULSE updated" in bigger.output and "max_bytes" in bigger.output
    config = stream_config(bare_nats.url)
    assert config.max_bytes == 1024**3
    assert config.duplicate_window == pytest.approx(60.0)


def test_log_init_rejects_a_bad_size_and_three_replicas_on_one_server(bare_nats: NatsNode) -> None:
    bad = runner.invoke(app, ["log", "init", "--log", bare_nats.url, "--max-bytes", "lots"])
    assert bad.exit_code == 2
    assert "'lots' is not a size" in bad.output
    refused = runner.invoke(app, ["log", "init", "--log", bare_nats.url, "--replicas", "3"])
    assert refused.exit_code == 2
    assert "refused the stream" in refused.output


def test_roles_refuse_to_start_without_the_stream(bare_nats: NatsNode, tmp_path: Path) -> None:
    config = sources_file(tmp_path, {"acme": ("shopify", SECRET)})
    for command in (
        ["intake", "--config", str(config), "--log", bare_nats.url],
        [
            "store",
            "--config",
            str(config),
            "--db",
            str(tmp_path / "s.duckdb"),
            "--log",
            bare_nats.url,
        ],
    ):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, result.output
        text = " ".join(result.output.split())
        assert "has no stream SHOPPULSE" in text
        assert f"run `shoppulse log init --log {bare_nats.url}`" in text
    assert not (tmp_path / "s.duckdb").exists()  # the store opened nothing


def test_roles_refuse_a_misconfigured_stream(bare_nats: NatsNode, tmp_path: Path) -> None:
    add_stream(
        bare_nats.url,
        StreamConfig(name=STREAM, subjects=list(SUBJECTS), storage=StorageType.MEMORY),
    )
    config = sources_file(tmp_path, {"acme": ("shopify", SECRET)})
    result = runner.invoke(app, ["intake", "--config", str(config), "--log", bare_nats.url])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "is misconfigured" in text
    assert "keeps messages in memory" in text
    assert "discards old messages when full" in text


def test_roles_refuse_an_unreachable_log(tmp_path: Path) -> None:
    config = sources_file(tmp_path, {"acme": ("shopify", SECRET)})
    url = f"nats://127.0.0.1:{free_port()}"
    result = runner.invoke(app, ["intake", "--config", str(config), "--log", url])
    assert result.exit_code == 2, result.output
    assert f"cannot reach the log at {url}" in " ".join(result.output.split())
