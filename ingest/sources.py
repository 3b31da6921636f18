"""The sources file: which stores may deliver, with which provider and secrets."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from ingest.providers import PROVIDERS
from ingest.providers import _standard_webhooks as swh
from ingest.providers.bigcommerce import HEADER_SECRET_PREFIX, parse_header_secret

#: Where the BigCommerce store API lives (`api_base_url` changes it, e.g. for a test stand-in).
BIGCOMMERCE_API_URL = "https://api.bigcommerce.com"


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
    store_hash: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9]{1,64}$",
        description="BigCommerce: the store hash (from the API path), to fetch order amounts.",
    )
    api_token: SecretStr | None = Field(
        default=None,
        description="BigCommerce: access token of a store API account with read-only Orders "
        "scope, to fetch order amounts (webhooks carry only ids).",
    )
    api_base_url: str = Field(
        default=BIGCOMMERCE_API_URL,
        pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$",
        description="BigCommerce: base URL of the store API.",
    )

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        if value not in PROVIDERS:
            raise ValueError(f"unknown provider '{value}' (known: {', '.join(sorted(PROVIDERS))})")
        return value

    @model_validator(mode="after")
    def _api_credentials(self) -> Source:
        uses_api = (
            self.store_hash is not None
            or self.api_token is not None
            or self.api_base_url != BIGCOMMERCE_API_URL
        )
        if uses_api and self.provider != "bigcommerce":
            raise ValueError("store_hash, api_token and api_base_url are for bigcommerce sources")
        if (self.store_hash is None) != (self.api_token is None):
            raise ValueError("store_hash and api_token go together: set both or neither")
        if self.api_token is not None and not self.api_token.get_secret_value().strip():
            raise ValueError("api_token is empty")
        return self

    @property
    def has_api_credentials(self) -> bool:
        """A BigCommerce source that may fetch order amounts from the store API."""
        return self.store_hash is not None and self.api_token is not None

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


def secret_problem(provider: str, secret: str) -> str | None:
    """Why `secret` can never verify a delivery of `provider`, or None when it can.

    The one rule for every entry point: `sources add` and `rotate-secret` refuse such a secret,
    and the service refuses to start with one (a hand-edited file would otherwise answer 401 to
    every delivery).
    """
    if not secret or secret != secret.strip() or any(c in secret for c in "\r\n\t"):
        return "the secret is empty or has surrounding spaces or line breaks"
    if provider == "standard":
        try:
            swh.decode_secret(secret)
        except ValueError as exc:
            return f"not a Standard Webhooks secret: {exc}"
    if (
        provider == "bigcommerce"
        and secret.startswith(HEADER_SECRET_PREFIX)
        and parse_header_secret(secret) is None
    ):
        return "a custom-header secret reads header:<Name>:<value>"
    return None


def check_secrets(sources: dict[str, Source], *, insecure_demo: bool) -> list[str]:
    """Raise unless every source has secrets that can all verify a delivery; in demo mode a
    source may have none: return the ids that have none."""
    check_secret_forms(sources)
    missing = [s.id for s in sources.values() if not any(s.secret_values())]
    if missing and not insecure_demo:
        raise ConfigError(
            f"source(s) {', '.join(missing)} have no secret: every delivery would be accepted "
            'unverified. Add `secrets = ["..."]`, or start with --insecure-demo for a local demo.'
        )
    return missing


def check_secret_forms(sources: dict[str, Source]) -> None:
    """Raise ConfigError naming every secret (by source and position) that can never verify."""
    problems = [
        f"source '{source.id}', secret {index} of {len(source.secrets)}: {problem}"
        for source in sources.values()
        for index, secret in enumerate(source.secret_values(), start=1)
        if (problem := secret_problem(source.provider, secret)) is not None
    ]
    if problems:
        raise ConfigError(
            "; ".join(problems) + ". Such a secret would reject every delivery with 401: fix it "
            "in the sources file, or replace it with `shoppulse sources rotate-secret` and "
            "`shoppulse sources retire-secret --secret ...`."
        )
