"""The docs are part of the product: they must cover every setting, command and metric."""

from __future__ import annotations

import inspect
import re
from datetime import timedelta
from pathlib import Path

import typer.main

from metrics.definitions import METRICS
from metrics.query import Window
from shoppulse.cli import app
from shoppulse.commands.settings import settings_table

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()
DOCS = README + "".join(p.read_text() for p in sorted((ROOT / "docs").glob("*.md")))


def test_readme_starts_with_the_two_commands() -> None:
    quick_start = README.split("## Quick start", 1)[1].split("##", 1)[0]
    assert "make run" in quick_start and "make test" in quick_start


def test_readme_settings_table_is_generated_and_current() -> None:
    match = re.search(r"<!-- settings:start -->\n(.*?)\n<!-- settings:end -->", README, re.S)
    assert match, "README lacks the settings markers"
    assert match.group(1).strip() == settings_table().strip(), (
        "README settings table is stale: regenerate it with `shoppulse settings`"
    )


def _command_names() -> list[str]:
    group = typer.main.get_group(app)
    names = []
    for name, command in group.commands.items():
        subcommands = getattr(command, "commands", None)
        if subcommands:
            names += [f"{name} {sub}" for sub in subcommands]
        else:
            names.append(name)
    return names


def test_every_command_is_documented() -> None:
    missing = [name for name in _command_names() if f"shoppulse {name}" not in DOCS]
    assert not missing, f"commands without docs: {missing}"


def test_every_metric_is_defined_in_the_docs() -> None:
    text = (ROOT / "docs" / "metrics.md").read_text()
    missing = [name for name in METRICS if f"`{name}`" not in text]
    assert not missing, f"metrics not in docs/metrics.md: {missing}"


def test_readme_says_where_the_command_is() -> None:
    quick_start = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert ".venv/bin/shoppulse" in quick_start and "source .venv/bin/activate" in quick_start


def test_sources_examples_name_their_file() -> None:
    """The `shoppulse sources` commands fail without a sources file: examples give one."""
    examples = re.findall(r"^shoppulse sources .*$", DOCS, re.M)
    without = [e for e in examples if "--config" not in e]
    assert examples and not without, without


def test_docs_show_only_commands_the_project_installs() -> None:
    """DuckDB's own command-line client is not a dependency: no example runs it."""
    runs_duckdb_cli = re.findall(r"^\s*duckdb\s.*$", DOCS, re.M)
    assert runs_duckdb_cli == []


def test_readme_states_the_read_api_default_window() -> None:
    default = inspect.signature(Window.around).parameters["default"].default
    assert default == timedelta(hours=24)
    assert "without them the window is the **last 24 hours**" in README
