"""Settings of the metrics stage: abandonment, time zones, folding and the history of figures."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, Field, field_validator, model_validator

from ingest.timezones import checked_timezone


class MetricsSettings(BaseModel):
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

    @field_validator("display_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return checked_timezone(value)

    @model_validator(mode="after")
    def _history_periods_in_order(self) -> MetricsSettings:
        if self.metrics_history_per_fold < timedelta(0):
            raise ValueError("metrics_history_per_fold must not be negative")
        if self.metrics_history_hourly < self.metrics_history_per_fold:
            raise ValueError(
                "metrics_history_hourly must not be less than metrics_history_per_fold"
            )
        return self
