"""Typed settings, read once at the entry point and passed down.

Every field can be overridden by an environment variable `SHOPPULSE_<FIELD>` (upper case).
The README's settings table is generated from the descriptions here (`shoppulse settings`).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DB_PATH = Path("data/shoppulse.duckdb")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SHOPPULSE_", extra="ignore")

    config: Path | None = Field(
        default=None, description="Path of the TOML file that lists the store sources."
    )
    db_path: Path = Field(
        default=DEFAULT_DB_PATH,
        description="The live DuckDB file. Only the service opens it; analysts read the "
        "published copy beside it.",
    )
    host: str = Field(default="127.0.0.1", description="Address the service listens on.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port the service listens on.")
    insecure_demo: bool = Field(
        default=False,
        description="Accept sources without secrets and skip signature checks for them. "
        "For a local demo only; never on a reachable address.",
    )
    max_body_bytes: int = Field(
        default=5 * 1024 * 1024, ge=1024, description="Largest accepted request body (413 above)."
    )
    batch_max: int = Field(
        default=1000, ge=1, description="Most deliveries the writer commits in one transaction."
    )
    batch_linger_ms: float = Field(
        default=1.0,
        ge=0,
        description="How long the writer waits for more deliveries before committing a batch "
        "that is not full.",
    )
    queue_max: int = Field(
        default=4000,
        ge=1,
        description="Most deliveries waiting for the writer; beyond it requests get 503 with "
        "Retry-After (bounds memory).",
    )
    retry_after_seconds: int = Field(
        default=5, ge=1, description="Retry-After value sent with a 503."
    )
    store_raw_bodies: bool = Field(
        default=True,
        description="Keep the raw body of accepted deliveries (quarantined ones are always "
        "kept so they can be replayed).",
    )
    raw_body_retention_days: int = Field(
        default=30,
        ge=0,
        description="Days raw bodies of accepted deliveries are kept before the purge clears "
        "them (0 keeps them forever).",
    )
    cart_abandon_after: timedelta = Field(
        default=timedelta(minutes=60),
        description="Inactivity after which an unconverted cart counts as abandoned.",
    )
    checkout_abandon_after: timedelta = Field(
        default=timedelta(minutes=10),
        description="Inactivity after which an uncompleted checkout counts as abandoned.",
    )
    signature_tolerance_seconds: int = Field(
        default=300,
        ge=1,
        description="Largest age (and future skew) of a signed timestamp (Stripe, Standard "
        "Webhooks) before the delivery is rejected as a replay.",
    )
    metrics_interval_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How often the metrics worker advances abandonment timers when no "
        "delivery arrives (deliveries trigger a fold at once).",
    )
    fold_batch_max: int = Field(
        default=20_000, ge=1, description="Most events the metrics engine folds in one transaction."
    )
    checkpoint_wal_mb: int = Field(
        default=64,
        ge=1,
        description="WAL size at which the writer checkpoints the database between batches.",
    )
