"""The service's settings: every stage's, composed, read once at the entry point and passed down.

Each stage declares its own settings (`ingest.settings.IngestSettings`,
`metrics.settings.MetricsSettings`, `shoppulse.publish.settings.PublishSettings`); the server's
are here. Every field can be overridden by an environment variable `SHOPPULSE_<FIELD>` (upper
case), read here only. The README's settings table is generated from the descriptions
(`shoppulse settings`). The scale-out log's settings are apart (`shoppulse.scale_out.settings`).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from ingest.settings import IngestSettings
from metrics.settings import MetricsSettings
from shoppulse.publish.settings import PublishSettings


class ServerSettings(BaseModel):
    """Where the sources are listed and how the service is reached."""

    config: Path | None = Field(
        default=None, description="Path of the TOML file that lists the store sources."
    )
    host: str = Field(default="127.0.0.1", description="Address the service listens on.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port the service listens on.")
    ssl_certfile: Path | None = Field(
        default=None,
        description="PEM certificate (with its chain) to serve HTTPS directly; needs ssl_keyfile. "
        "Unset: plain HTTP, for 127.0.0.1 or behind a TLS reverse proxy (docs/operations.md).",
    )
    ssl_keyfile: Path | None = Field(default=None, description="PEM private key of ssl_certfile.")
    api_token: SecretStr | None = Field(
        default=None,
        description="When set, every endpoint except POST /webhooks/*, /healthz, /readyz and the "
        "API docs requires `Authorization: Bearer <token>`.",
    )


class Settings(BaseSettings, PublishSettings, MetricsSettings, IngestSettings, ServerSettings):
    """Every setting of the service, in stage order: the server's, ingest's (intake, storage,
    reconciliation), the metrics' and publishing's."""

    model_config = SettingsConfigDict(env_prefix="SHOPPULSE_", extra="ignore")
