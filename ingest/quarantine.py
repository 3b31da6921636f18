"""The quarantine: how its reasons are worded, what to do about each, and the queries that list it.

An authentic delivery that cannot be normalized is stored with status 'quarantined' and its
reason, never dropped. `GET /api/v1/ingest/quarantine`, `shoppulse quarantine list` and the replay
read it through the queries here.

The advice is derived from the stored reason, so deliveries quarantined by any version get it.
A topic the platform sends but ShopPulse does not use is not a mapping problem: the store was
subscribed to more than it needs, and replaying will never move such a delivery.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the adapters import this module for its wording: it must not load duckdb
    import duckdb

#: How the adapters word each reason (the start of the stored text).
UNKNOWN_TOPIC = "unknown topic"
UNKNOWN_SCOPE = "unknown scope"  # BigCommerce calls its topics scopes
INVALID_JSON = "invalid JSON"
FUTURE_TIME = "event time"
BODY_NOT_KEPT = "the raw body was not kept"

UNSUBSCRIBE = (
    "ShopPulse does not use this topic: unsubscribe it in the store's admin (the topics to "
    "subscribe are in docs/connect-your-store.md); a replay will not move it"
)
NOT_JSON = "the sender sent a body that is not JSON; a replay will not change it"
CHECK_CLOCKS = (
    "check the clocks of the store and of this machine; `shoppulse replay` moves it once its "
    "time is no longer in the future"
)
CANNOT_REPLAY = "its body is gone, so it cannot be replayed"
FIX_MAPPING = "fix the mapping (or the sender), then `shoppulse replay`"


def next_step(reason: str | None) -> str:
    """The advice for a delivery quarantined with `reason`."""
    text = reason or ""
    if text.startswith((UNKNOWN_TOPIC, UNKNOWN_SCOPE)):
        return UNSUBSCRIBE
    if text.startswith(INVALID_JSON):
        return NOT_JSON
    if text.startswith(FUTURE_TIME) and "in the future" in text:
        return CHECK_CLOCKS
    if text.startswith(BODY_NOT_KEPT):
        return CANNOT_REPLAY
    return FIX_MAPPING


@dataclass(frozen=True, slots=True)
class QuarantineFilter:
    """Which quarantined deliveries: all of them, or those matching every given field."""

    source: str | None = None
    since: datetime | None = None  # received at or after
    reason: str | None = None  # a case-insensitive part of the reason

    def where(self) -> tuple[str, list[Any]]:
        clauses = ["status = 'quarantined'"]
        params: list[Any] = []
        if self.source:
            clauses.append("source = ?")
            params.append(self.source)
        if self.since is not None:
            clauses.append("received_at >= ?")
            params.append(self.since)
        if self.reason:
            clauses.append("strpos(lower(coalesce(reason, '')), lower(?)) > 0")
            params.append(self.reason)
        return " AND ".join(clauses), params


def count_quarantined(
    con: duckdb.DuckDBPyConnection, where: QuarantineFilter, after_seq: int = 0
) -> int:
    """How many quarantined deliveries match `where` (after `after_seq`)."""
    from ingest.storage.schema import DELIVERIES  # loads duckdb: only when a query runs

    clause, params = where.where()
    row = con.execute(
        f"SELECT count(*) FROM {DELIVERIES} WHERE {clause} AND delivery_seq > ?",
        [*params, after_seq],
    ).fetchone()
    return int(row[0]) if row else 0


def recent_quarantine(
    con: duckdb.DuckDBPyConnection,
    limit: int,
    source: str | None = None,
    reason: str | None = None,
) -> list[dict[str, Any]]:
    """The newest quarantined deliveries with their reasons (never bodies or headers).

    `reason` keeps those whose reason contains it (any case).
    """
    from ingest.storage.schema import DELIVERIES  # loads duckdb: only when a query runs

    clause, params = QuarantineFilter(source=source, reason=reason).where()
    rows = con.execute(
        f"SELECT source, delivery_id, topic, received_at, reason FROM {DELIVERIES} "
        f"WHERE {clause} ORDER BY delivery_seq DESC LIMIT ?",
        [*params, limit],
    ).fetchall()
    return [
        {
            "source": source_id,
            "delivery_id": delivery_id,
            "topic": topic,
            "received_at": received_at.astimezone(UTC).isoformat(),
            "reason": reason,
            "next": next_step(reason),
        }
        for source_id, delivery_id, topic, received_at, reason in rows
    ]
