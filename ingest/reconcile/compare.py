"""Compare fetched records with what ShopPulse stored: current, missing, newer or older.

Each event of a record is compared with the stored events of the same source, kind and entity:

- `missing`: no event of the entity is stored (its webhooks were all lost).
- `newer`: the fetched `updated_at` is later than every stored one (the latest webhook was lost).
- `current`: the same `updated_at` is stored (BigCommerce: or one later by at most the webhooks'
  dispatch lag, since its webhooks are dated when sent), or the entity is deleted (deletion is
  sticky), or the record is compared by presence only (Stripe) and the entity is stored.
- `older`: every stored version is later (a webhook newer than the API's answer arrived meanwhile).

A record is `missing` when one of its events is, else `newer` when one is, else `older` when its
main (first) event is, else `current`. Only its missing and newer events are stored: the metrics
fold orders versions by `updated_at`, so an equal or older version would change nothing anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import duckdb

from ingest.events import CanonicalEvent
from ingest.reconcile.records import FetchedRecord
from ingest.storage.schema import EVENTS


class Verdict(StrEnum):
    CURRENT = "current"
    MISSING = "missing"
    NEWER = "newer"
    OLDER = "older"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Stored:
    """The stored versions of one entity."""

    latest: datetime | None
    deleted: bool


Key = tuple[str, str]  # (kind, entity id)


def stored_versions(
    con: duckdb.DuckDBPyConnection, source: str, keys: Sequence[Key]
) -> dict[Key, Stored]:
    """What is stored of these entities of `source` (absent: nothing is)."""
    if not keys:
        return {}
    rows = con.execute(
        f"SELECT e.kind, e.entity_id, max(e.updated_at), bool_or(e.deleted) FROM {EVENTS} e "
        "JOIN (SELECT unnest(?::VARCHAR[]) AS kind, unnest(?::VARCHAR[]) AS entity_id) k "
        "ON e.kind = k.kind AND e.entity_id = k.entity_id "
        "WHERE e.source = ? GROUP BY e.kind, e.entity_id",
        [[k[0] for k in keys], [k[1] for k in keys], source],
    ).fetchall()
    return {(kind, entity): Stored(latest, bool(deleted)) for kind, entity, latest, deleted in rows}


def _event_verdict(event: CanonicalEvent, stored: Stored | None, record: FetchedRecord) -> Verdict:
    if stored is None:
        return Verdict.MISSING
    if stored.deleted or not record.versioned or event.updated_at is None:
        return Verdict.CURRENT
    if stored.latest is None or event.updated_at > stored.latest:
        return Verdict.NEWER
    current = stored.latest - event.updated_at <= record.dispatch_lag
    return Verdict.CURRENT if current else Verdict.OLDER


def classify(
    record: FetchedRecord, stored: dict[Key, Stored]
) -> tuple[Verdict, list[CanonicalEvent]]:
    """The record's verdict and the events of it worth storing."""
    if record.reason is not None:
        return Verdict.ERROR, []
    if not record.events:
        return Verdict.CURRENT, []  # the adapter makes nothing of it, as of its webhook
    verdicts = [_event_verdict(e, stored.get((e.kind, e.entity_id)), record) for e in record.events]
    fill = [
        event
        for event, verdict in zip(record.events, verdicts, strict=True)
        if verdict in (Verdict.MISSING, Verdict.NEWER)
    ]
    if Verdict.MISSING in verdicts:
        return Verdict.MISSING, fill
    if Verdict.NEWER in verdicts:
        return Verdict.NEWER, fill
    return (Verdict.OLDER if verdicts[0] is Verdict.OLDER else Verdict.CURRENT), []


def keys_of(records: Sequence[FetchedRecord]) -> list[Key]:
    return sorted({(e.kind, e.entity_id) for r in records for e in r.events})
