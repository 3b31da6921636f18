"""Settings of reconciliation: how often and how far back each store's API is compared."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, Field


class ReconcileSettings(BaseModel):
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
