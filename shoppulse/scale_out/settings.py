"""Settings of the log links (environment `SHOPPULSE_LOG_<NAME>`, command-line options on top)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_LOG_URL = "nats://127.0.0.1:4222"
STREAM = "SHOPPULSE"
#: Seconds within which the stream recognises a repeated message id (`log init --duplicate-window`).
DEFAULT_DUPLICATE_WINDOW = 120.0


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

    max_age_days: float = Field(
        default=7.0,
        gt=0,
        description="Days the log keeps a message (`shoppulse log init` sets it on the stream); "
        "older ones are discarded, so raw bodies in the log do not outlive this. Keep it at most "
        "raw_body_retention_days and longer than any store outage you want to ride out.",
    )

    signing_keys: tuple[SecretStr, ...] = Field(
        default=(),
        description="Keys intake signs the log's messages with (the first) and the store checks "
        "them by (any); the commands read them from the sources file's `[log]` section.",
    )

    # Credentials of the link: one way at a time (see docs/scale-out.md, "Credentials"). Secrets
    # come from the environment or a file, never from the command line alone.
    creds_file: Path | None = Field(
        default=None,
        description="A NATS .creds file (user JWT and nkey seed), as `nsc` makes it.",
    )
    nkey_seed_file: Path | None = Field(
        default=None, description="A file holding the user's nkey seed (SU...)."
    )
    token: SecretStr | None = Field(default=None, description="The server's token.")
    token_file: Path | None = Field(default=None, description="A file holding the token.")
    user: str | None = Field(default=None, description="User name (with a password).")
    password: SecretStr | None = Field(default=None, description="The user's password.")
    password_file: Path | None = Field(default=None, description="A file holding the password.")
    # TLS: a `tls://` URL or a CA file turns it on.
    tls_ca_file: Path | None = Field(
        default=None, description="PEM CA certificate(s) the server's certificate must chain to."
    )
    tls_cert_file: Path | None = Field(
        default=None, description="PEM client certificate, for servers that verify clients."
    )
    tls_key_file: Path | None = Field(default=None, description="PEM private key of tls_cert_file.")

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
