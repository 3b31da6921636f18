"""The sources file: which stores may deliver, with which provider and secrets."""

from __future__ import annotations

import tomllib
from pathlib import Path
from urllib.parse import urlsplit

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
from ingest.timezones import checked_timezone

#: Where each platform's store API lives when `api_base_url` does not say (it overrides it, e.g.
#: for a test stand-in or staging). Shopify's is the shop's own domain; WooCommerce's is the
#: WordPress site, which only `api_base_url` can name.
BIGCOMMERCE_API_URL = "https://api.bigcommerce.com"
STRIPE_API_URL = "https://api.stripe.com"
_DEFAULT_API_URLS = {"bigcommerce": BIGCOMMERCE_API_URL, "stripe": STRIPE_API_URL}

#: The store API credentials each provider takes (all optional; all of a provider's or none).
API_CREDENTIALS: dict[str, tuple[str, ...]] = {
    "shopify": ("shop_domain", "api_token"),
    "woocommerce": ("consumer_key", "consumer_secret"),
    "bigcommerce": ("store_hash", "api_token"),
    "stripe": ("api_key",),
}

#: Hosts to which credentials may travel over plain HTTP (a stand-in on this machine).
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


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
        description="BigCommerce: the store hash (from the API path).",
    )
    shop_domain: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9-]{0,62}\.myshopify\.com$",
        description="Shopify: the shop's myshopify.com domain, for the GraphQL Admin API.",
    )
    api_token: SecretStr | None = Field(
        default=None,
        description="BigCommerce: access token of a store API account with read-only Orders "
        "scope (fetches order amounts, which webhooks leave out, and reconciles). Shopify: the "
        "Admin API access token of a custom app with the read_orders scope.",
    )
    consumer_key: SecretStr | None = Field(
        default=None, description="WooCommerce: consumer key (ck_...) of a Read REST API key."
    )
    consumer_secret: SecretStr | None = Field(
        default=None, description="WooCommerce: consumer secret (cs_...) of that key."
    )
    api_key: SecretStr | None = Field(
        default=None, description="Stripe: a restricted key with read access (rk_...)."
    )
    reconcile_interval_seconds: float | None = Field(
        default=None,
        ge=0,
        description="How often this source is reconciled with its store API (0: never on a "
        "schedule); default: the reconcile_interval_seconds setting.",
    )
    api_base_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$",
        description="Base URL of the store API (WooCommerce: the shop's site URL). Default: "
        "the platform's own (Shopify: https://<shop_domain>).",
    )
    timezone: str | None = Field(
        default=None,
        description="The store's IANA time zone (e.g. Europe/Berlin; Shopify: the shop's time "
        "zone under Settings > General). Its day and hour buckets, 'today' and its weeks follow "
        "it; unset: the display_timezone setting.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str | None) -> str | None:
        return None if value is None else checked_timezone(value)

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        if value not in PROVIDERS:
            raise ValueError(f"unknown provider '{value}' (known: {', '.join(sorted(PROVIDERS))})")
        return value

    @model_validator(mode="after")
    def _api_credentials(self) -> Source:
        taken = API_CREDENTIALS.get(self.provider, ())
        for name in sorted({n for names in API_CREDENTIALS.values() for n in names}):
            if getattr(self, name) is not None and name not in taken:
                owners = sorted(p for p, names in API_CREDENTIALS.items() if name in names)
                raise ValueError(f"{name} is for {' and '.join(owners)} sources")
        if self.api_base_url is not None and not taken:
            raise ValueError(f"{self.provider} sources have no store API: remove api_base_url")
        given = [name for name in taken if getattr(self, name) is not None]
        if given and len(given) != len(taken):
            raise ValueError(f"{' and '.join(taken)} go together: set both or neither")
        for name in taken:
            value = getattr(self, name)
            if isinstance(value, SecretStr) and not value.get_secret_value().strip():
                raise ValueError(f"{name} is empty")
        if self.reconcile_interval_seconds is not None and not self.has_api_credentials:
            raise ValueError("reconcile_interval_seconds needs the source's store API credentials")
        if given and self.provider == "woocommerce" and self.api_base_url is None:
            raise ValueError("woocommerce API keys need api_base_url: the shop's site URL")
        url = urlsplit(self.api_base_url or "")
        if url.scheme == "http" and url.hostname not in _LOOPBACK_HOSTS:
            raise ValueError(
                "api_base_url must be https:// (plain http only to 127.0.0.1): the credentials "
                "would cross the network readable"
            )
        return self

    @property
    def has_api_credentials(self) -> bool:
        """The source has every store API credential its provider takes."""
        taken = API_CREDENTIALS.get(self.provider, ())
        return bool(taken) and all(getattr(self, name) is not None for name in taken)

    @property
    def api_url(self) -> str | None:
        """The store API's base URL (without a trailing slash), or None when there is none."""
        url = self.api_base_url or _DEFAULT_API_URLS.get(self.provider)
        if url is None and self.shop_domain is not None:
            url = f"https://{self.shop_domain}"
        return url.rstrip("/") if url else None

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
