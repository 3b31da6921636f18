"""Typed settings, read once at the entry point and passed down.

Every field can be overridden by an environment variable `SHOPPULSE_<FIELD>` (upper case).
The README's settings table is generated from the descriptions here (`shoppulse settings`).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ingest.timezones import checked_timezone

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
    ssl_certfile: Path | None = Field(
        default=None,
        description="PEM certificate (with its chain) to serve HTTPS directly; needs ssl_keyfile. "
        "Unset: plain HTTP, for 127.0.0.1 or behind a TLS reverse proxy (docs/operations.md).",
    )
    ssl_keyfile: Path | None = Field(default=None, description="PEM private key of ssl_certfile.")
    insecure_demo: bool = Field(
        default=False,
        description="Accept sources without secrets and skip signature checks for them. "
        "For a local demo only; never on a reachable address.",
    )
    max_body_bytes: int = Field(
        default=5 * 1024 * 1024, ge=1024, description="Largest accepted request body (413 above)."
    )
    body_read_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Most time a sender may take to send a whole request body; a slower or "
        "stalled upload gets 408 and its connection is closed.",
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
    max_in_flight: int = Field(
        default=256,
        ge=1,
        description="Most webhook requests handled at once (reading, verifying or waiting for "
        "the writer); beyond it requests get 503 with Retry-After at once. Bounds memory and "
        "ack latency under overload.",
    )
    min_free_disk_mb: int = Field(
        default=256,
        ge=0,
        description="Free space the database's filesystem must keep; below it deliveries get 503 "
        "and /readyz fails until space returns (0 disables the check). Keep it above twice "
        "checkpoint_wal_mb: a checkpoint that runs out of space stops the database until a "
        "restart.",
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
    purge_interval_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="How often the retention purge runs (it also runs at start).",
    )
    redact_personal_data: bool = Field(
        default=False,
        description="Replace customer fields (email, phone, names, addresses, customer, IP, note) "
        'with "[redacted]" in the stored raw body of accepted deliveries. Metrics are '
        "unaffected: they come from the canonical events, which hold no personal data.",
    )
    api_token: SecretStr | None = Field(
        default=None,
        description="When set, every endpoint except POST /webhooks/*, /healthz, /readyz and the "
        "API docs requires `Authorization: Bearer <token>`.",
    )
    cart_abandon_after: timedelta = Field(
        default=timedelta(minutes=60),
        description="Inactivity after which an unconverted cart counts as abandoned.",
    )
    checkout_abandon_after: timedelta = Field(
        default=timedelta(minutes=10),
        description="Inactivity after which an uncompleted checkout counts as abandoned.",
    )
    display_timezone: str = Field(
        default="UTC",
        description="IANA time zone (e.g. Europe/Berlin) of day and hour buckets, 'today' and "
        "weeks when figures span all sources, and of sources without a `timezone` of their own.",
    )
    signature_tolerance_seconds: int = Field(
        default=300,
        ge=1,
        description="Largest age (and future skew) of a signed timestamp (Stripe, Standard "
        "Webhooks) before the delivery is rejected as a replay.",
    )
    future_tolerance: timedelta = Field(
        default=timedelta(days=1),
        description="How far ahead of the service clock an event's created_at or updated_at may "
        "be; a delivery with a later event time is quarantined.",
    )
    metrics_interval_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How often the metrics worker advances abandonment timers when no "
        "delivery arrives (deliveries trigger a fold at once, see the minimum fold interval).",
    )
    metrics_min_fold_interval_seconds: float = Field(
        default=0.25,
        ge=0,
        description="Least time between two metrics folds: deliveries committed meanwhile are "
        "folded together. The wait is also at least twice the last fold's duration, so "
        "folding never takes more than a third of the time under load.",
    )
    metrics_state_write_seconds: float = Field(
        default=2.0,
        ge=0,
        description="How often the metrics engine writes the entity state it keeps in memory to "
        "the state tables (0: with every fold). The aggregates are written with every fold "
        "whatever this says; after a crash the engine folds the events since the last write "
        "again into state, so nothing is lost or counted twice.",
    )
    metrics_history_per_fold: timedelta = Field(
        default=timedelta(days=7),
        description="How long the metrics history keeps every fold: `as_of` answers exactly what "
        "/api/v1/metrics answered at that moment for this recent period (docs/metrics.md).",
    )
    metrics_history_hourly: timedelta = Field(
        default=timedelta(days=90),
        description="Up to this age the metrics history keeps one state per hour (`as_of` "
        "resolves to the end of the last whole hour before it), beyond it one per day. Not "
        "less than metrics_history_per_fold.",
    )
    fold_batch_max: int = Field(
        default=20_000, ge=1, description="Most events the metrics engine folds in one transaction."
    )
    publish_interval_seconds: float = Field(
        default=2.0,
        gt=0,
        description="How often the service publishes what changed to the analysts' Parquet "
        "files and catalog (`analytics.duckdb` beside the live file). The SQL views lag behind "
        "by at most this plus `metrics_state_write_seconds` (they publish the folds whose "
        "entity state is written).",
    )
    publish_grace_seconds: float = Field(
        default=3600.0,
        ge=0,
        description="How long replaced Parquet files are kept before they are deleted, so that "
        "queries running on an older catalog keep working.",
    )
    checkpoint_wal_mb: int = Field(
        default=64,
        ge=1,
        description="WAL size at which DuckDB checkpoints the database, in the commit that "
        "crosses it (deliveries acknowledged meanwhile wait for it).",
    )
    reconcile_interval_seconds: float = Field(
        default=900.0,
        ge=0,
        description="How often each source with store API credentials is reconciled with the "
        "store's API, to find and fill what its webhooks missed (0: only `shoppulse reconcile`). "
        "See docs/reconciliation.md.",
    )
    reconcile_overlap_seconds: float = Field(
        default=3600.0,
        ge=0,
        description="How far back before the start of a source's last successful reconciliation "
        "the next one begins, so that nothing falls between two runs.",
    )
    reconcile_lookback: timedelta = Field(
        default=timedelta(days=1),
        description="What the first reconciliation of a source covers (later runs continue "
        "where the last one started).",
    )
    reconcile_flag_missed: int = Field(
        default=10,
        ge=1,
        description="Records a source's webhooks may miss in 7 days (found by reconciliation) "
        "before the source is flagged: its webhook subscription is likely gone.",
    )
    duckdb_memory_limit_mb: int = Field(
        default=512,
        ge=64,
        description="Most memory DuckDB's buffer pool keeps for the live database (its cache of "
        "table pages; larger queries spill to a temporary directory beside the file). Bounds "
        "the service's memory as history grows; DuckDB's own default is 80 % of the machine.",
    )

    @field_validator("display_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return checked_timezone(value)

    @model_validator(mode="after")
    def _history_periods_in_order(self) -> Settings:
        if self.metrics_history_per_fold < timedelta(0):
            raise ValueError("metrics_history_per_fold must not be negative")
        if self.metrics_history_hourly < self.metrics_history_per_fold:
            raise ValueError(
                "metrics_history_hourly must not be less than metrics_history_per_fold"
            )
        return self
