"""The `shoppulse` command's own surface: its version and help that reads as plain words."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from shoppulse import __version__
from shoppulse.cli import app
from shoppulse.wording import counted


def run(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), prog_name="shoppulse", env={"COLUMNS": "120"})


def _command_paths() -> list[list[str]]:
    """Every command and subcommand, as the words that run it."""
    root: Any = typer.main.get_command(app)
    paths: list[list[str]] = []

    def walk(group: Any, prefix: list[str]) -> None:
        for name, command in group.commands.items():
            paths.append([*prefix, name])
            if hasattr(command, "commands"):
                walk(command, [*prefix, name])

    walk(root, [])
    return paths


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"shoppulse {__version__}"


@pytest.mark.parametrize("path", [[], *_command_paths()], ids=lambda p: " ".join(p) or "root")
def test_help_names_values_in_plain_words(path: list[str]) -> None:
    result = run(*path, "--help")
    assert result.exit_code == 0, result.output
    assert not re.search(r"<(bool|str|int|float|path|datetime)>", result.output), result.output
    usage = next(line for line in result.output.splitlines() if "Usage:" in line)
    assert "{" not in usage, usage


def test_help_shows_what_each_value_is() -> None:
    sql = run("sql", "--help").output
    assert re.search(r"Usage: shoppulse sql \[OPTIONS\] STATEMENT", sql), sql
    assert re.search(r"--format\s+table\|csv\|json\|parquet", sql), sql
    assert re.search(r"--db\s+PATH", sql), sql
    replay = run("replay", "--help").output
    assert re.search(r"--dry-run\s+Show what would move", replay), replay


def test_sources_commands_take_no_database() -> None:
    for command in ("list", "add", "rotate-secret", "retire-secret"):
        assert "--db" not in run("sources", command, "--help").output


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (0, "0 quarantined deliveries"),
        (1, "1 quarantined delivery"),
        (2, "2 quarantined deliveries"),
    ],
)
def test_counted_nouns(count: int, text: str) -> None:
    assert counted(count, "quarantined delivery", "quarantined deliveries") == text
    assert counted(count, "row") == text.replace("quarantined delivery", "row").replace(
        "quarantined deliveries", "rows"
    )


def test_a_bad_setting_is_one_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["serve", "--config", str(tmp_path / "sources.toml")],
        env={"SHOPPULSE_DISPLAY_TIMEZONE": "Europe/Berln", "COLUMNS": "200"},
    )
    assert result.exit_code == 2, result.output
    assert "invalid setting: display_timezone (SHOPPULSE_DISPLAY_TIMEZONE)" in result.output
    assert "unknown time zone 'Europe/Berln'" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--ssl-certfile", "cert.pem"], "HTTPS needs both --ssl-certfile and --ssl-keyfile"),
        (["--config", "missing.toml"], "missing.toml"),
    ],
)
def test_serve_refuses_before_opening_the_database(
    tmp_path: Path, options: list[str], message: str
) -> None:
    db = tmp_path / "live.duckdb"
    result = CliRunner().invoke(app, ["serve", "--db", str(db), *options], env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not db.exists()
