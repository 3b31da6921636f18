"""`shoppulse settings`: every setting with its environment variable, default and meaning."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from ingest.settings import Settings


def _default(value: Any) -> str:
    if value is None:
        return "—"
    return f"`{value}`"


def settings_table() -> str:
    """The README's settings table, generated from the Settings model."""
    lines = [
        "| setting | environment variable | default | meaning |",
        "| --- | --- | --- | --- |",
    ]
    for name, field in Settings.model_fields.items():
        description = (field.description or "").replace("|", "\\|")
        lines.append(
            f"| `{name}` | `SHOPPULSE_{name.upper()}` | {_default(field.default)} | {description} |"
        )
    return "\n".join(lines)


def show_settings() -> None:
    """Print every setting as a Markdown table (environment variables override defaults)."""
    Console(soft_wrap=True).print(settings_table(), markup=False, highlight=False)
