"""The sources file: which stores may deliver, with which provider and secrets."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from ingest.providers import PROVIDERS


class ConfigError(Exception):
    """The configuration cannot be used; the message says what to change."""


class Source(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$",
        description="Lower-case id; the ingest URL is POST /webhooks/<id>.",
    )
    provider: str = Field(description="shopify, woocommerce, bigcommerce, stripe or standard.")
    secrets: tuple[SecretStr, ...] = Field(
        default=(), description="One or more secrets; any of them verifies a delivery."
    )

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        if value not in PROVIDERS:
            raise ValueError(f"unknown provider '{value}' (known: {', '.join(sorted(PROVIDERS))})")
        return value

    def secret_values(self) -> list[str]:
        return [secret.get_secret_value() for secret in self.secrets]


class SourcesFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    sources: tuple[Source, ...] = ()


def load_sources(path: Path) -> dict[str, Source]:
    """Read and validate the sources file; ConfigError explains any problem."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    try:
        parsed = SourcesFile.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"config file {path}: {problems}") from None
    by_id: dict[str, Source] = {}
    for source in parsed.sources:
        if source.id in by_id:
            raise ConfigError(f"config file {path}: source id '{source.id}' appears twice")
        by_id[source.id] = source
    return by_id


def check_secrets(sources: dict[str, Source], *, insecure_demo: bool) -> list[str]:
    """Raise unless every source has a secret; in demo mode return the ids that have none."""
    missing = [s.id for s in sources.values() if not any(s.secret_values())]
    if missing and not insecure_demo:
        raise ConfigError(
            f"source(s) {', '.join(missing)} have no secret: every delivery would be accepted "
            'unverified. Add `secrets = ["..."]`, or start with --insecure-demo for a local demo.'
        )
    return missing
