"""Settings of the log links (environment `SHOPPULSE_LOG_<NAME>`, command-line options on top)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_LOG_URL = "nats://127.0.0.1:4222"
STREAM = "SHOPPULSE"


class LogSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SHOPPULSE_LOG_", extra="ignore")

    url: str = Field(
        default=DEFAULT_LOG_URL,
        description="NATS server(s) of the log, comma-separated (any node of a cluster will do; "
        "list several so a process can start while one is down).",
    )
    stream: str = Field(
        default=STREAM,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="Name of the JetStream stream that holds the deliveries.",
    )
    connect_timeout_seconds: float = Field(
        default=2.0, gt=0, description="Most time one attempt to reach a NATS server may take."
    )
    publish_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        description="Most time an intake replica waits for the log's acknowledgement of a "
        "delivery; after it the sender gets 503 with Retry-After.",
    )
    counts_interval_seconds: float = Field(
        default=2.0,
        gt=0,
        description="How often an intake replica sends its rejection counts to the log.",
    )
    fetch_batch: int = Field(
        default=1000, ge=1, le=10_000, description="Most messages the store takes per fetch."
    )
    ack_wait_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Time the log waits for the store's acknowledgement before it delivers a "
        "message again (the store's ledger recognises the repeat).",
    )

    @property
    def servers(self) -> list[str]:
        return [url.strip() for url in self.url.split(",") if url.strip()]

    @property
    def display_url(self) -> str:
        """The URL(s) without any credentials, for messages and logs."""
        return ",".join(_without_credentials(url) for url in self.servers)


def _without_credentials(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    return f"{scheme}://{rest.rpartition('@')[2]}"
