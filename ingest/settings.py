"""Settings of the ingest stage: the webhook intake's, its storage's and reconciliation's.

Each stage declares its own settings (typed fields with a description each); the service's
settings (`shoppulse.settings.Settings`) compose them all and read the environment
(`SHOPPULSE_<FIELD>`) once, at the entry point. Ingest's code takes an `IngestSettings`.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, Field

from ingest.reconcile.settings import ReconcileSettings
from ingest.storage.settings import StorageSettings


class IntakeSettings(BaseModel):
    """How the webhook endpoint reads, verifies and bounds a delivery."""

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
    max_in_flight: int = Field(
        default=256,
        ge=1,
        description="Most webhook requests handled at once (reading, verifying or waiting for "
        "the writer); beyond it requests get 503 with Retry-After at once. Bounds memory and "
        "ack latency under overload.",
    )
    retry_after_seconds: int = Field(
        default=5, ge=1, description="Retry-After value sent with a 503."
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


class IngestSettings(ReconcileSettings, StorageSettings, IntakeSettings):
    """Everything ingest reads: the intake's settings, then its storage's and reconciliation's."""
