"""The log signing key of the scale-out tests: in the sources files the roles read, and in the
link settings of the apps the tests build."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import SecretStr

from shoppulse.scale_out.settings import LogSettings

SIGNING_KEY = "scale-out-tests-log-signing-key-0123456789"


def signed_settings(**values: Any) -> LogSettings:
    """LogSettings with the tests' signing key (what the commands read from the sources file)."""
    return LogSettings(signing_keys=(SecretStr(SIGNING_KEY),), **values)


def add_signing_key(config: Path, key: str = SIGNING_KEY) -> Path:
    """Append a `[log]` section with `key` to the sources file `config`."""
    with config.open("a", encoding="utf-8") as handle:
        handle.write(f'\n[log]\nsigning_keys = ["{key}"]\n')
    return config
