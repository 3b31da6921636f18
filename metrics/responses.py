"""The JSON bodies the metrics API answers, as pydantic models: the contract its clients (the
dashboard, analysts' scripts) read, and what the OpenAPI schema shows.

Pydantic only, so that a client can import the contract without the engine behind it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from metrics.definitions import Grain


class CurrencyFigures(BaseModel):
    currency: str | None = Field(description="ISO 4217 code; null for orders without amounts.")
    orders: int
    gross_sales: str | None = Field(description="Decimal string.")
    discounts: str | None
    returns: str | None
    net_sales: str | None
    aov: str | None = Field(description="(gross_sales - discounts) / orders; null with no orders.")


class WindowFigures(BaseModel):
    source: str | None = Field(description="The source filtered on; null for all sources.")
    from_: str = Field(alias="from", description="Window start (inclusive, minute-aligned).")
    to: str = Field(description="Window end (exclusive, minute-aligned).")
    orders: int
    currency: str | None = Field(description="The one currency of the window, else null.")
    gross_sales: str | None = Field(description="Set when the window has one currency.")
    discounts: str | None
    returns: str | None
    net_sales: str | None
    aov: str | None
    by_currency: list[CurrencyFigures]
    orders_without_amounts: int = Field(
        description="Counted orders whose amounts are unknown (excluded from money figures)."
    )
    carts_created: int
    carts_converted: int
    carts_abandoned: int
    carts_open: int
    checkouts_started: int
    checkouts_completed: int
    checkouts_abandoned: int
    checkouts_open: int
    cart_conversion_rate: float | None
    cart_abandonment_rate: float | None
    checkout_conversion_rate: float | None
    checkout_abandonment_rate: float | None
    provisional: bool = Field(description="Some carts or checkouts of the window are still open.")
    as_of: str | None = Field(description="When the figures were last evaluated.")
    watermark: str | None = Field(description="received_at of the newest event folded in.")
    freshness_seconds: float | None = Field(description="Now minus the watermark.")
    events_folded_through: int
    definition_versions: dict[str, int] = Field(
        description="The version of each metric's definition these figures were computed with "
        "(GET /api/v1/metrics/definitions)."
    )
    cart_abandon_after_seconds: float = Field(
        description="Inactivity after which an unconverted cart counts as abandoned."
    )
    checkout_abandon_after_seconds: float = Field(
        description="Inactivity after which an uncompleted checkout counts as abandoned."
    )


class Point(BaseModel):
    bucket: str
    currency: str | None = None
    value: int | float | str | None


class Series(BaseModel):
    metric: str
    grain: Grain
    source: str | None
    timezone: str = Field(description="The IANA zone whose hours and days the buckets are.")
    from_: str = Field(alias="from")
    to: str
    definition_version: int = Field(description="Version of the metric's definition.")
    points: list[Point]


class Restatement(BaseModel):
    bucket: str = Field(description="Start of the hour or day (of `timezone`).")
    currency: str | None = Field(description="For money; null for counts.")
    closed_at: str = Field(description="When the bucket closed: its end plus `settle`.")
    first_reported: int | str | None = Field(
        description="The value reported once the bucket closed (as_of closed_at); null when "
        "it closed before the history began."
    )
    now: int | str
    difference: int | str | None = Field(description="now - first_reported.")
    causes: dict[str, int | str] = Field(
        description="The difference split by cause; the causes add up to it exactly. Causes: "
        "late_delivery, cancellation, refund, order_edit, abandonment, abandonment_reversed, "
        "reconciliation_fill, replay."
    )


class Restatements(BaseModel):
    metric: str
    grain: Literal["hour", "day"]
    source: str | None
    timezone: str = Field(description="The IANA zone whose hours and days the buckets are.")
    from_: str = Field(alias="from")
    to: str
    settle_seconds: float
    definition_version: int
    buckets: list[Restatement]


class Definition(BaseModel):
    name: str
    kind: str
    label: str
    description: str = Field(description="What the metric means (docs/metrics.md).")
    formula: str
    version: int = Field(description="Raised whenever the definition changes.")


class Zones(BaseModel):
    display_timezone: str = Field(
        description="The zone of figures over all sources (the display_timezone setting)."
    )
    sources: dict[str, str] = Field(
        description="Each configured source's zone (its `timezone`, else the display zone)."
    )
