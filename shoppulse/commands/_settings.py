"""The settings a command runs with: the environment, with its command-line options on top."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.markup import escape

from ingest.settings import Settings
from ingest.sources import ConfigError, Source, load_sources
from shoppulse.commands._errors import fail


def make_settings(config: Path | None = None, db: Path | None = None, **overrides: Any) -> Settings:
    """Settings from the environment, with command-line options on top."""
    values: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    if config is not None:
        values["config"] = config
    if db is not None:
        values["db_path"] = db
    try:
        return Settings(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])} (SHOPPULSE_"
            f"{'_'.join(str(p) for p in error['loc']).upper()}): {error['msg']}"
            for error in exc.errors()
        )
        raise fail(escape(f"invalid setting: {problems}")) from None


def load_configured_sources(settings: Settings) -> dict[str, Source]:
    if settings.config is None:
        raise ConfigError(
            "no sources file: pass --config FILE or set SHOPPULSE_CONFIG (see README, "
            "'Connect your store')"
        )
    return load_sources(settings.config)
