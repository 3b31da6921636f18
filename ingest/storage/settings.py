"""Settings of ingest's storage: the live file, the writer's batches, raw bodies, retention.

Plain fields with descriptions; the environment is read once, by the service's settings
(`shoppulse.settings`), which compose every stage's.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

DEFAULT_DB_PATH = Path("data/shoppulse.duckdb")


class StorageSettings(BaseModel):
    db_path: Path = Field(
        default=DEFAULT_DB_PATH,
        description="The live DuckDB file. Only the service opens it; analysts read the "
        "published copy beside it.",
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
    min_free_disk_mb: int = Field(
        default=256,
        ge=0,
        description="Free space the database's filesystem must keep; below it deliveries get 503 "
        "and /readyz fails until space returns (0 disables the check). Keep it above twice "
        "checkpoint_wal_mb: a checkpoint that runs out of space stops the database until a "
        "restart.",
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
    checkpoint_wal_mb: int = Field(
        default=64,
        ge=1,
        description="WAL size at which DuckDB checkpoints the database, in the commit that "
        "crosses it (deliveries acknowledged meanwhile wait for it).",
    )
    duckdb_memory_limit_mb: int = Field(
        default=512,
        ge=64,
        description="Most memory DuckDB's buffer pool keeps for the live database (its cache of "
        "table pages; larger queries spill to a temporary directory beside the file). Bounds "
        "the service's memory as history grows; DuckDB's own default is 80 % of the machine.",
    )
