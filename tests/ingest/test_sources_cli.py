"""`shoppulse sources ...`: the sources file is edited, validated and never leaks a secret."""

from __future__ import annotations

import base64
import socket
import stat
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from ingest.source_admin import add_source, retire_secrets, rotate_secret
from ingest.sources import ConfigError, load_sources
from shoppulse.cli import app as cli
from shoppulse.service import create_app
from shoppulse.settings import Settings
from tests.conftest import FrozenClock, fixture_bytes, signed_post

HAND_WRITTEN = """\
# The stores of ACME (kept by hand: comments must survive)
[[sources]]
id = "acme"          # the main shop
provider = "shopify"
secrets = ["shopify-key-1"]

[[sources]]
id = "acme-bc"
provider = "bigcommerce"
secrets = ["bc-client-secret"]
store_hash = "abc123"
api_token = "bc-api-token"
"""


def run(*args: str, input: str | None = None) -> Any:
    return CliRunner().invoke(cli, list(args), input=input)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "sources.toml"
    path.write_text(HAND_WRITTEN, encoding="utf-8")
    return path


def test_list_shows_counts_never_secrets(config: Path) -> None:
    result = run("sources", "list", "--config", str(config))
    assert result.exit_code == 0, result.output
    for shown in ("acme", "shopify", "acme-bc", "bigcommerce", "/webhooks/acme-bc", "yes"):
        assert shown in result.output
    for secret in ("shopify-key-1", "bc-client-secret", "bc-api-token"):
        assert secret not in result.output


def test_add_generates_a_secret_once_and_keeps_the_rest(config: Path) -> None:
    result = run(
        "sources",
        "add",
        "--id",
        "acme-woo",
        "--provider",
        "woocommerce",
        "--generate-secret",
        "--config",
        str(config),
    )
    assert result.exit_code == 0, result.output
    assert "/webhooks/acme-woo" in result.output and "restart" in result.output
    loaded = load_sources(config)
    assert list(loaded) == ["acme", "acme-bc", "acme-woo"]
    generated = loaded["acme-woo"].secret_values()[0]
    assert len(generated) >= 40 and generated in result.output
    text = config.read_text()
    assert text.startswith(HAND_WRITTEN)  # comments, order and values kept
    assert "the main shop" in text
    listed = run("sources", "list", "--config", str(config))
    assert generated not in listed.output


def test_added_standard_secret_verifies_real_deliveries(tmp_path: Path) -> None:
    config = tmp_path / "new" / "sources.toml"  # missing: created, private
    result = run(
        "sources",
        "add",
        "--id",
        "custom",
        "--provider",
        "standard",
        "--generate-secret",
        "--config",
        str(config),
    )
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    source = load_sources(config)["custom"]
    secret = source.secret_values()[0]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    clock = FrozenClock()
    settings = Settings(db_path=tmp_path / "db" / "s.duckdb", batch_linger_ms=0.5)
    with TestClient(create_app(settings, load_sources(config), clock=clock)) as client:
        response = signed_post(
            client,
            "custom",
            "standard",
            fixture_bytes("standard", "events.json"),
            topic="events",
            delivery_id="msg-1",
            secret=secret,
            timestamp=int(clock.now.timestamp()),
        )
        assert response.status_code in (200, 202), response.text


def test_rotate_then_retire(config: Path) -> None:
    rotated = run(
        "sources",
        "rotate-secret",
        "--id",
        "acme",
        "--secret",
        "shopify-key-2",
        "--config",
        str(config),
    )
    assert rotated.exit_code == 0, rotated.output
    assert "shopify-key-2" not in rotated.output
    assert load_sources(config)["acme"].secret_values() == ["shopify-key-1", "shopify-key-2"]
    retired = run(
        "sources", "retire-secret", "--id", "acme", "--keep-latest", "--config", str(config)
    )
    assert retired.exit_code == 0, retired.output
    assert "removed 1 secret" in retired.output
    assert load_sources(config)["acme"].secret_values() == ["shopify-key-2"]
    again = run(
        "sources", "retire-secret", "--id", "acme", "--keep-latest", "--config", str(config)
    )
    assert again.exit_code == 0 and "nothing to retire" in again.output
    assert "the main shop" in config.read_text()
    assert load_sources(config)["acme-bc"].has_api_credentials


def test_secret_is_asked_without_echo(config: Path) -> None:
    result = run(
        "sources",
        "add",
        "--id",
        "acme-stripe",
        "--provider",
        "stripe",
        "--config",
        str(config),
        input="whsec_typed\n",
    )
    assert result.exit_code == 0, result.output
    assert "whsec_typed" not in result.output
    assert load_sources(config)["acme-stripe"].secret_values() == ["whsec_typed"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "--id", "acme", "--provider", "shopify", "--secret", "x"], "already exists"),
        (["add", "--id", "Bad Id", "--provider", "shopify", "--secret", "x"], "invalid source id"),
        (["add", "--id", "new", "--provider", "magento", "--secret", "x"], "unknown provider"),
        (["add", "--id", "new", "--provider", "shopify", "--generate-secret"], "pass that one"),
        (
            ["add", "--id", "new", "--provider", "standard", "--secret", "nope!"],
            "Standard Webhooks",
        ),
        (["add", "--id", "new", "--provider", "shopify", "--secret", " x"], "surrounding spaces"),
        (
            ["add", "--id", "new", "--provider", "shopify", "--secret", "x", "--generate-secret"],
            "not both",
        ),
        (["rotate-secret", "--id", "nope", "--secret", "x"], "no source 'nope'"),
        (["rotate-secret", "--id", "acme", "--secret", "shopify-key-1"], "already has this"),
        (["retire-secret", "--id", "acme"], "exactly one of --keep-latest or --secret"),
        (["retire-secret", "--id", "acme", "--secret", "shopify-key-1"], "no secret left"),
    ],
)
def test_clear_errors_leave_the_file_unchanged(config: Path, args: list[str], message: str) -> None:
    result = run("sources", *args, "--config", str(config))
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert config.read_text() == HAND_WRITTEN


def test_missing_file_and_config(tmp_path: Path) -> None:
    missing = run("sources", "list", "--config", str(tmp_path / "none.toml"))
    assert missing.exit_code == 2 and "does not exist" in " ".join(missing.output.split())
    with pytest.raises(ConfigError, match="does not exist"):
        rotate_secret(tmp_path / "none.toml", "acme", "x")
    assert not (tmp_path / "none.toml").exists()


def test_an_invalid_result_is_never_written(config: Path) -> None:
    broken = HAND_WRITTEN.replace(
        'provider = "bigcommerce"', 'provider = "bigcommerce"\ncolour = 1'
    )
    config.write_text(broken, encoding="utf-8")
    with pytest.raises(ConfigError, match="colour"):
        add_source(config, "other", "woocommerce", "secret-value")
    assert config.read_text() == broken
    assert not list(config.parent.glob(".*.tmp"))
    with pytest.raises(ConfigError, match="exactly one"):
        retire_secrets(config, "acme", keep_latest=True, secret="x")


def test_api_credentials_are_validated(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        '[[sources]]\nid = "s"\nprovider = "shopify"\nsecrets = ["x"]\nstore_hash = "abc"\n'
        'api_token = "t"\n'
    )
    with pytest.raises(ConfigError, match="for bigcommerce sources"):
        load_sources(path)
    path.write_text('[[sources]]\nid = "b"\nprovider = "bigcommerce"\nstore_hash = "abc"\n')
    with pytest.raises(ConfigError, match="set both or neither"):
        load_sources(path)
    path.write_text(
        '[[sources]]\nid = "b"\nprovider = "bigcommerce"\nstore_hash = "../x"\napi_token = "t"\n'
    )
    with pytest.raises(ConfigError, match="store_hash"):
        load_sources(path)


# A Standard Webhooks secret written without its base64 padding (25 bytes: two '=' short).
UNPADDED = "whsec_" + base64.b64encode(b"shoppulse-unpadded-key-01").decode().rstrip("=")


def test_an_unpadded_standard_secret_is_refused_by_sources_add(config: Path) -> None:
    result = run(
        "sources", "add", "--id", "custom", "--provider", "standard", "--secret", UNPADDED,
        "--config", str(config),
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "add '==' at the end" in " ".join(result.output.split())
    assert config.read_text() == HAND_WRITTEN


@pytest.mark.parametrize(
    ("provider", "secret", "message"),
    [
        ("standard", UNPADDED, "lacks its padding: add '==' at the end"),
        ("standard", "whsec_not base64!", "not a Standard Webhooks secret"),
        ("shopify", "key-with-a-newline\n", "surrounding spaces or line breaks"),
        ("bigcommerce", "header:X-Auth", "header:<Name>:<value>"),
    ],
)
def test_a_hand_edited_secret_that_can_never_verify_stops_serve(
    tmp_path: Path, provider: str, secret: str, message: str
) -> None:
    config = tmp_path / "sources.toml"
    escaped = secret.replace("\n", "\\n")
    config.write_text(
        HAND_WRITTEN
        + f'\n[[sources]]\nid = "hand-made"\nprovider = "{provider}"\n'
        + f'secrets = ["shopify-key-ok", "{escaped}"]\n',
        encoding="utf-8",
    )
    db = tmp_path / "data" / "shoppulse.duckdb"
    with socket.socket() as taken:  # had the command started a server, it would fail fast here
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        results = [
            run(command, "--config", str(config), "--db", str(db), "--port", port)
            for command in ("serve", "up")
        ]
    for result in results:
        text = " ".join(result.output.split())
        assert result.exit_code == 2, result.output
        assert "source 'hand-made', secret 2 of 2" in text and message in text
        assert "rotate-secret" in text  # the fix
    assert not db.exists()  # refused before anything was opened
    with pytest.raises(ConfigError, match="hand-made"):
        create_app(Settings(config=config, db_path=db), load_sources(config))


def test_add_with_a_time_zone_and_list_it(config: Path) -> None:
    def add(timezone: str) -> Any:
        return run(
            *("sources", "add", "--config", str(config), "--id", "acme-eu"),
            *("--provider", "woocommerce", "--generate-secret", "--timezone", timezone),
        )

    before = config.read_text()
    bad = add("Europe/Berln")
    assert bad.exit_code == 2 and "unknown time zone 'Europe/Berln'" in bad.output
    assert config.read_text() == before
    added = add("Europe/Berlin")
    assert added.exit_code == 0, added.output
    assert load_sources(config)["acme-eu"].timezone == "Europe/Berlin"
    listed = CliRunner().invoke(
        cli, ["sources", "list", "--config", str(config)], env={"COLUMNS": "200"}
    )
    assert "Europe/Berlin" in listed.output and "display" in listed.output
