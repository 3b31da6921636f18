"""One reconciliation run of one source: fetch page by page, compare, store what was missed.

The records a page lacks or has newer become deliveries (provenance `reconciliation`, kept in
their `headers`; a deterministic delivery id, see ingest/reconcile/records.py) with just the
events worth storing, and go to the writer like a webhook's delivery: the same transaction
batches, the same `events` table, the same fold. A record that cannot be mapped is stored in
quarantine with its reason (`shoppulse quarantine list` shows it), as an authentic delivery that
cannot be mapped would be. A dry run compares and stores nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime

import duckdb
import orjson

from ingest.events import CanonicalEvent
from ingest.intake import Clock, future_event_reason
from ingest.reconcile.compare import Verdict, classify, keys_of, stored_versions
from ingest.reconcile.http import ApiFailure, CredentialsRejected
from ingest.reconcile.records import PROVENANCE, PROVENANCE_HEADER, FetchedRecord, Fetcher
from ingest.reconcile.report import CREDENTIALS_REJECTED, FAILED, OK, RunReport
from ingest.redaction import redacted_body
from ingest.settings import IngestSettings
from ingest.storage.schema import FILL
from ingest.storage.writer import Delivery, Outcome, Overloaded, Writer

log = logging.getLogger("shoppulse.reconcile")

Store = Callable[[Sequence[Delivery]], list[Outcome]]
Progress = Callable[[RunReport], None]

#: Attempts to hand a page to a full writer queue before the run fails.
OVERLOADED_ATTEMPTS = 30


def store_through(writer: Writer, wait: float = 1.0) -> Store:
    """Hand deliveries to `writer` (started) and wait for their commit, from any thread."""

    async def submit_all(deliveries: Sequence[Delivery]) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(deliveries)
        for _ in range(OVERLOADED_ATTEMPTS):
            waiting = [i for i, outcome in enumerate(outcomes) if outcome is None]
            if not waiting:
                break
            results = await asyncio.gather(
                *(writer.submit(deliveries[i]) for i in waiting), return_exceptions=True
            )
            for index, result in zip(waiting, results, strict=True):
                if isinstance(result, Overloaded):
                    continue
                if isinstance(result, BaseException):
                    raise result
                outcomes[index] = result
            if any(outcome is None for outcome in outcomes):
                await asyncio.sleep(wait)
        if any(outcome is None for outcome in outcomes):
            raise ApiFailure("not stored: the writer stayed overloaded")
        return [outcome for outcome in outcomes if outcome is not None]

    def store(deliveries: Sequence[Delivery]) -> list[Outcome]:
        return asyncio.run(submit_all(deliveries)) if deliveries else []

    return store


def delivery_for(
    source: str,
    record: FetchedRecord,
    events: list[CanonicalEvent],
    reason: str | None,
    settings: IngestSettings,
    received_at: datetime,
) -> Delivery:
    headers = {PROVENANCE_HEADER: PROVENANCE, **record.headers}
    body: bytes | None = record.body
    if reason is None and not settings.store_raw_bodies:
        body = None
    elif reason is None and settings.redact_personal_data:
        body = redacted_body(orjson.loads(record.body))
    return Delivery(
        source=source,
        delivery_id=record.delivery_id,
        topic=record.topic[:128],
        received_at=received_at,
        headers=orjson.dumps(headers).decode(),
        body=body,
        reason=None if reason is None else f"reconciliation: {reason}"[:300],
        events=[] if reason is not None else events,
        origin=FILL,
    )


def run_source(
    report: RunReport,
    fetcher: Fetcher,
    reader: duckdb.DuckDBPyConnection,
    store: Store,
    settings: IngestSettings,
    clock: Clock,
    progress: Progress | None = None,
) -> RunReport:
    """Run `report`'s reconciliation to the end; the report says how it went (never raises
    for the API's or the database's failures)."""
    started = time.monotonic()
    try:
        for page in fetcher.pages(report.since):
            report.total = page.total if page.total is not None else report.total
            _page(report, page.records, reader, store, settings, clock)
            if progress is not None:
                progress(report)
        report.status = OK
    except CredentialsRejected as exc:
        report.status, report.message = CREDENTIALS_REJECTED, str(exc)
    except (ApiFailure, duckdb.Error, TimeoutError, OSError) as exc:
        report.status, report.message = FAILED, str(exc)[:500] or type(exc).__name__
    finally:
        report.finished_at = clock()
    log.log(
        logging.INFO if report.status == OK else logging.WARNING,
        "reconciliation of %s %s in %.1f s: %d fetched, %d current, %d missing and %d newer "
        "(%s), %d older, %d errors%s",
        report.source,
        report.status,
        time.monotonic() - started,
        report.fetched,
        report.current,
        report.missing,
        report.newer,
        "would be filled" if report.dry_run else "filled",
        report.older,
        report.errors,
        f": {report.message}" if report.message else "",
        extra={"source": report.source, "outcome": "reconciliation"},
    )
    return report


def _page(
    report: RunReport,
    records: list[FetchedRecord],
    reader: duckdb.DuckDBPyConnection,
    store: Store,
    settings: IngestSettings,
    clock: Clock,
) -> None:
    stored = stored_versions(reader, report.source, keys_of(records))
    now = clock()
    verdicts: list[tuple[FetchedRecord, Verdict, str | None]] = []
    deliveries: list[Delivery] = []
    for record in records:
        verdict, fill = classify(record, stored)
        reason = record.reason
        if verdict is not Verdict.ERROR:
            reason = future_event_reason(fill, now, settings.future_tolerance)
            if reason is not None:
                verdict = Verdict.ERROR
        verdicts.append((record, verdict, reason))
        if verdict in (Verdict.MISSING, Verdict.NEWER, Verdict.ERROR):
            deliveries.append(delivery_for(report.source, record, fill, reason, settings, now))
    outcomes = iter(store(deliveries) if not report.dry_run else [])
    for record, verdict, reason in verdicts:
        if not report.dry_run and verdict is not Verdict.CURRENT and verdict is not Verdict.OLDER:
            if next(outcomes) is Outcome.DUPLICATE and verdict is not Verdict.ERROR:
                verdict = Verdict.CURRENT  # the same version was stored meanwhile
        report.count(verdict, record.kind, reason)
