"""What a store API fetch gives: records, each standing for the webhook that would carry it.

A record is one entity version as the store knows it now, written in the shape of the webhook
payload its provider's adapter maps (`topic` + `payload` + the headers the adapter reads), so it
becomes canonical events through the very same mapping as a webhook. Its delivery id is
deterministic (`reconcile:<topic>:<entity id>:<updated_at>`): fetching the same version again
never stores it twice.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import orjson

from ingest.events import CanonicalEvent
from ingest.providers.base import Provider, UnusableDelivery
from ingest.reconcile.http import ApiFailure

#: The kept header that marks a delivery as fetched by reconciliation, not sent by the store.
PROVENANCE_HEADER = "x-shoppulse-provenance"
PROVENANCE = "reconciliation"
#: Every reconciliation delivery id starts so (the webhook delivery counters leave them out).
DELIVERY_ID_PREFIX = "reconcile:"


@dataclass(frozen=True, slots=True)
class FetchedRecord:
    """One entity version fetched from a store API, mapped (or not) into canonical events."""

    topic: str
    entity_id: str
    version: datetime | None  # the entity's updated_at as the API gives it
    body: bytes  # the webhook-shaped payload (kept like a delivery's raw body)
    headers: Mapping[str, str] = field(default_factory=dict)  # what the adapter reads
    events: tuple[CanonicalEvent, ...] = ()
    reason: str | None = None  # why it cannot be mapped (it goes to quarantine)
    #: False for APIs whose objects have no update time (Stripe): compared by presence only.
    versioned: bool = True
    #: How much later a stored version may be and still be this one (a platform that dates its
    #: webhooks by their dispatch, after the change: BigCommerce).
    dispatch_lag: timedelta = timedelta(0)

    @property
    def delivery_id(self) -> str:
        version = self.version.isoformat() if self.version is not None else "-"
        return f"{DELIVERY_ID_PREFIX}{self.topic}:{self.entity_id}:{version}"[:256]

    @property
    def kind(self) -> str:
        """The kind of the record's main entity (its first event), for the report."""
        return self.events[0].kind if self.events else "unknown"


@dataclass(frozen=True, slots=True)
class Page:
    """One page of an API listing; `total` is the listing's size when the API tells it."""

    records: list[FetchedRecord]
    total: int | None = None


#: Most pages one listing may take: a bound on any API that never says "last page".
MAX_PAGES = 10_000


class Pager:
    """Counts a listing's pages and refuses a cursor seen before, so no run loops forever."""

    def __init__(self, what: str, max_pages: int = MAX_PAGES) -> None:
        self.what = what
        self.max_pages = max_pages
        self.pages = 0
        self._cursors: set[str] = set()

    def next(self, cursor: str | int) -> None:
        """Note that the page at `cursor` comes next; ApiFailure if that would loop."""
        self.pages += 1
        if self.pages >= self.max_pages:
            raise ApiFailure(f"{self.what}: more than {self.max_pages} pages; stopped")
        if str(cursor) in self._cursors:
            raise ApiFailure(f"{self.what}: the API gave the cursor {str(cursor)[:40]!r} twice")
        self._cursors.add(str(cursor))


class Fetcher(Protocol):
    """One source's store API: pages of the records changed since a moment."""

    def pages(self, since: datetime) -> Iterator[Page]:
        """Every record changed at or after `since`, page by page; raises ApiFailure."""

    def close(self) -> None: ...


def mapped(
    provider: Provider,
    topic: str,
    entity_id: str,
    version: datetime | None,
    payload: Mapping[str, Any],
    headers: Mapping[str, str] | None = None,
    *,
    versioned: bool = True,
) -> FetchedRecord:
    """A record whose events come from `provider.normalize`, as for a webhook delivery."""
    lower = {name.lower(): value for name, value in (headers or {}).items()}
    body = orjson.dumps(payload)
    try:
        events = provider.normalize(topic, orjson.loads(body), lower)
    except UnusableDelivery as exc:
        reason = str(exc)[:300]
        return FetchedRecord(
            topic, entity_id, version, body, lower, reason=reason, versioned=versioned
        )
    except (ValueError, TypeError, KeyError, AttributeError, ArithmeticError) as exc:
        reason = f"could not normalize: {type(exc).__name__}: {exc}"[:300]
        return FetchedRecord(
            topic, entity_id, version, body, lower, reason=reason, versioned=versioned
        )
    return FetchedRecord(
        topic, entity_id, version, body, lower, events=tuple(events), versioned=versioned
    )
