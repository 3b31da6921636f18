"""Settings of publishing: how often the analysts' files and catalog are refreshed, and kept.

Like every stage's, they are composed into the service's settings (`shoppulse.settings.Settings`),
which read the environment (`SHOPPULSE_<FIELD>`) once. This module imports only pydantic:
`shoppulse --help` reads the settings and must not load the publisher's data stack.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class PublishSettings(BaseModel):
    """How often the analysts' Parquet files and catalog are refreshed, and kept."""

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
