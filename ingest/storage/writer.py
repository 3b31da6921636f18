"""The one writer: requests hand it their delivery, it commits batches (group commit).

A request's acknowledgement waits for the commit of the transaction that holds its delivery, so a
2xx always means "durably stored". The queue in front of the writer is bounded: when it is full,
`submit` raises `Overloaded` at once (the endpoint answers 503 with Retry-After) instead of
letting memory grow.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from itertools import repeat
from typing import TypeVar

import duckdb
import polars as pl

from ingest.events import CanonicalEvent
from ingest.storage.body_codec import pack
from ingest.storage.database import StorageError
from ingest.storage.schema import DELIVERIES, EVENT_LINES, EVENTS, INGEST_COUNTS, WEBHOOK

log = logging.getLogger("shoppulse.writer")

T = TypeVar("T")


class Outcome(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    QUARANTINED = "quarantined"


class Overloaded(Exception):
    """The writer's queue is full: the sender should retry later."""


@dataclass(slots=True)
class Delivery:
    """One verified delivery, ready to store."""

    source: str
    delivery_id: str
    topic: str
    received_at: datetime
    headers: str
    body: bytes | None
    reason: str | None = None
    events: list[CanonicalEvent] = field(default_factory=list)
    #: Where its events came from (`events.origin`): a webhook, or FILL for a record fetched from
    #: the store's API by reconciliation.
    origin: str = WEBHOOK

    @property
    def status(self) -> str:
        return "quarantined" if self.reason is not None else "accepted"


@dataclass(slots=True)
class _Pending:
    delivery: Delivery
    future: asyncio.Future[Outcome]
    loop: asyncio.AbstractEventLoop


_STOP = object()

#: Seconds the writer keeps checking every batch for duplicates after it met one (see `_write`).
DUPLICATE_COOLDOWN = 5.0

EVENT_COLUMNS = (
    "event_seq",
    "delivery_seq",
    "source",
    "received_at",
    "kind",
    "action",
    "entity_id",
    "created_at",
    "updated_at",
    "cart_token",
    "checkout_token",
    "order_id",
    "currency",
    "gross_sales",
    "discounts",
    "refund_amount",
    "test",
    "cancelled",
    "deleted",
    "abandoned",
    "completed",
    "name",  # added by ingest migration 4 (migration 5 adds `origin` after it: see event_values)
)

_DELIVERY_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "delivery_seq": pl.Int64,
    "source": pl.String,
    "delivery_id": pl.String,
    "topic": pl.String,
    "received_at": pl.Datetime("us", "UTC"),
    "headers": pl.String,
    "body": pl.Binary,
    "status": pl.String,
    "reason": pl.String,
    "event_count": pl.Int32,
    "body_codec": pl.String,
}


#: Money columns of `events`, appended as text (see `money_text`).
_MONEY_COLUMNS = frozenset({"gross_sales", "discounts", "refund_amount"})


def money_text(value: Decimal | None) -> str | None:
    """A money amount as the text DuckDB appends into a DECIMAL(18,4) column.

    DuckDB's Python appender takes ~5.7 µs to convert a `Decimal` and ~2.5 µs to parse the same
    amount as text (a Shopify order with five lines has twelve amounts). Amounts are already
    quantized to four places (`ingest.events`), so the text is plain decimal notation and exact.
    """
    return None if value is None else str(value)


def event_values(
    rows: list[tuple[int, int, str, datetime, CanonicalEvent]],
    origin: str | Sequence[str] = WEBHOOK,
) -> list[tuple[object, ...]]:
    """Canonical events as rows in the `events` table's column order (`origin` last): one
    origin for all rows, or one per row."""
    names = EVENT_COLUMNS[4:]
    origins = repeat(origin) if isinstance(origin, str) else origin  # repeat: no end
    return [
        (
            event_seq,
            delivery_seq,
            source,
            received_at,
            *[
                money_text(getattr(event, n)) if n in _MONEY_COLUMNS else getattr(event, n)
                for n in names
            ],
            o,
        )
        for (event_seq, delivery_seq, source, received_at, event), o in zip(
            rows, origins, strict=False
        )
    ]


def line_values(
    rows: list[tuple[int, int, str, datetime, CanonicalEvent]],
) -> list[tuple[object, ...]]:
    """The line items of canonical events as rows of the `event_lines` table."""
    return [
        (
            event_seq,
            position,
            line.product_id,
            line.variant_id,
            line.sku,
            line.title,
            line.quantity,
            money_text(line.unit_price),
            money_text(line.discount),
        )
        for event_seq, _, _, _, event in rows
        if event.lines
        for position, line in enumerate(event.lines, start=1)
    ]


class Writer:
    """Owns every write of ingest's tables, on one thread."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        *,
        batch_max: int = 1000,
        batch_linger_ms: float = 1.0,
        queue_max: int = 4000,
        on_commit: Callable[[], None] | None = None,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        """`on_commit` is called after each commit that stored deliveries (the metrics fold
        listens); `on_batch(deliveries, seconds)` after each batch written (the time of its
        transaction, BEGIN to COMMIT), on the writer thread."""
        self._con = con.cursor()
        self._batch_max = batch_max
        self._linger = batch_linger_ms / 1000
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_max)
        self._on_commit = on_commit
        self._on_batch = on_batch
        self._thread = threading.Thread(target=self._run, name="shoppulse-writer", daemon=True)
        self._counts_lock = threading.Lock()
        self._pending_counts: Counter[tuple[str, str, str]] = Counter()
        self._jobs: queue.SimpleQueue[Callable[[duckdb.DuckDBPyConnection], None]] = (
            queue.SimpleQueue()
        )
        self._careful_until = 0.0  # check batches for duplicates until then (monotonic)
        self._appenders: dict[str, duckdb.Appender] = {}
        self._appended = False  # a job added events: wake the on_commit listener after it
        row = self._con.execute(
            f"SELECT coalesce(max(delivery_seq), 0) FROM {DELIVERIES}"
        ).fetchall()[0]
        self._delivery_seq = int(row[0]) if row else 0
        row = self._con.execute(f"SELECT coalesce(max(event_seq), 0) FROM {EVENTS}").fetchall()[0]
        self._event_seq = int(row[0]) if row else 0
        self.healthy = True
        self.last_error: str | None = None
        self.last_commit_at: float | None = None
        self.batches = 0

    # ------------------------------------------------------------------ public API

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Commit what is queued, then stop the thread."""
        if not self._thread.is_alive():
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    @property
    def events_stored_through(self) -> int:
        """The seq of the newest committed event (0 before the first)."""
        return self._event_seq

    async def submit(self, delivery: Delivery) -> Outcome:
        """Queue `delivery` and wait until it is committed (or found to be a duplicate)."""
        return await self.enqueue(delivery)

    def enqueue(self, delivery: Delivery) -> asyncio.Future[Outcome]:
        """Queue `delivery` (in the running loop); the future resolves once it is committed.

        For callers that hand over many deliveries at once (the store's log consumer): a future
        each, without a task each. Raises `Overloaded` at once when the queue is full.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        try:
            self._queue.put_nowait(_Pending(delivery, future, loop))
        except queue.Full:
            raise Overloaded(f"{self._queue.maxsize} deliveries are waiting to be stored") from None
        return future

    def count(self, source: str, outcome: str, reason: str) -> None:
        """Record a delivery that stores nothing (rejected, duplicate); flushed with a batch."""
        with self._counts_lock:
            self._pending_counts[(source, outcome, reason[:200])] += 1
        if self._queue.empty():
            self._wake()

    def run_job(self, job: Callable[[duckdb.DuckDBPyConnection], None]) -> None:
        """Run `job(connection)` on the writer thread between batches (e.g. a replay)."""
        self._jobs.put(job)
        self._wake()

    def submit_job(
        self, job: Callable[[duckdb.DuckDBPyConnection], T]
    ) -> concurrent.futures.Future[T]:
        """Queue `job` on the writer thread; the future holds its result or its exception."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run(con: duckdb.DuckDBPyConnection) -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(job(con))
            except BaseException as exc:
                future.set_exception(exc)

        self.run_job(run)
        return future

    def append_events(
        self,
        con: duckdb.DuckDBPyConnection,
        delivery_seq: int,
        source: str,
        received_at: datetime,
        events: Sequence[CanonicalEvent],
        origin: str = WEBHOOK,
    ) -> None:
        """Insert `events` for the stored delivery `delivery_seq`, with the next event seqs and
        their `origin` (REPLAY, FILL).

        For events added after the fact (a delivery replayed out of quarantine, an enriched
        order): call it from a `run_job` job, inside the job's own transaction on `con`, or on a
        writer that is not started. Seqs are taken at once, so a job that rolls back leaves a gap
        (harmless); the on_commit listener is woken after the job.
        """
        if not events:
            return
        first = self._event_seq + 1
        self._event_seq += len(events)
        rows = [
            (first + offset, delivery_seq, source, received_at, event)
            for offset, event in enumerate(events)
        ]
        appender = con.appender(EVENTS)
        appender.append_rows(event_values(rows, origin))
        appender.flush()
        lines = line_values(rows)
        if lines:
            appender = con.appender(EVENT_LINES)
            appender.append_rows(lines)
            appender.flush()
        self._appended = True

    # ------------------------------------------------------------------ the thread

    def _wake(self) -> None:
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass

    def _run(self) -> None:
        stopping = False
        while not stopping:
            try:
                first = self._queue.get(timeout=1.0)
            except queue.Empty:
                first = None
            batch: list[_Pending] = []
            if first is _STOP:
                stopping = True
            elif isinstance(first, _Pending):
                batch.append(first)
            deadline = time.monotonic() + self._linger
            while len(batch) < self._batch_max and not stopping:
                try:
                    remaining = deadline - time.monotonic()
                    item = (
                        self._queue.get(timeout=remaining)
                        if remaining > 0
                        else self._queue.get_nowait()
                    )
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                elif isinstance(item, _Pending):
                    batch.append(item)
            self._commit(batch)
            self._run_jobs()

    def _run_jobs(self) -> None:
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return
            try:
                job(self._con)
            except Exception:
                log.exception("writer job failed")
            if self._appended and self._on_commit is not None:
                self._appended = False
                self._on_commit()

    def _take_counts(self) -> Counter[tuple[str, str, str]]:
        with self._counts_lock:
            counts, self._pending_counts = self._pending_counts, Counter()
        return counts

    def _commit(self, batch: list[_Pending]) -> None:
        counts = self._take_counts()
        if not batch and not counts:
            return
        outcomes: list[tuple[_Pending, Outcome | BaseException]] = []
        seen: set[tuple[str, str]] = set()
        fresh: list[_Pending] = []
        for pending in batch:
            key = (pending.delivery.source, pending.delivery.delivery_id)
            if key in seen:
                outcomes.append((pending, Outcome.DUPLICATE))
                counts[(key[0], "duplicate", "")] += 1
            else:
                seen.add(key)
                fresh.append(pending)
        started = time.perf_counter()
        try:
            inserted = self._write(fresh, counts)
        except Exception as exc:  # any DB failure: nothing of the batch is acknowledged
            log.error("batch of %d deliveries not stored: %s", len(batch), exc)
            self.healthy = False
            self.last_error = str(exc)[:500]
            with self._counts_lock:
                self._pending_counts.update(counts)
            error = StorageError(f"the database could not store the delivery: {exc}")
            self._resolve([(pending, error) for pending in batch])
            return
        if fresh:  # only a commit that stored deliveries proves deliveries can be stored again
            self.healthy = True
            self.last_error = None
        self.last_commit_at = time.time()
        self.batches += 1
        if self._on_batch is not None:
            self._on_batch(len(batch), time.perf_counter() - started)
        for pending in fresh:
            key = (pending.delivery.source, pending.delivery.delivery_id)
            if key not in inserted:
                outcomes.append((pending, Outcome.DUPLICATE))
            elif pending.delivery.reason is not None:
                outcomes.append((pending, Outcome.QUARANTINED))
            else:
                outcomes.append((pending, Outcome.STORED))
        self._resolve(outcomes)
        if self._on_commit is not None and fresh:
            self._on_commit()

    def _write(
        self, fresh: list[_Pending], counts: Counter[tuple[str, str, str]]
    ) -> set[tuple[str, str]]:
        """Store `fresh` and `counts` in one transaction; return the (source, delivery id) pairs
        that were new.

        Deliveries are appended optimistically: a batch without a duplicate (nearly all of them)
        is one append, and the primary key rejects the whole batch if it holds one. That batch is
        then written again with `INSERT … ON CONFLICT DO NOTHING RETURNING`, which finds the
        duplicates but costs about as much as the rest of the batch; the next batches take that
        path too until DUPLICATE_COOLDOWN seconds pass without a duplicate.
        """
        optimistic = time.monotonic() >= self._careful_until
        try:
            return self._write_once(fresh, counts, optimistic=optimistic)
        except duckdb.ConstraintException:
            if not optimistic:
                raise
        self._careful_until = time.monotonic() + DUPLICATE_COOLDOWN
        return self._write_once(fresh, counts, optimistic=False)

    def _write_once(
        self, fresh: list[_Pending], counts: Counter[tuple[str, str, str]], *, optimistic: bool
    ) -> set[tuple[str, str]]:
        con = self._con
        inserted: set[tuple[str, str]] = set()
        event_seq = self._event_seq
        duplicates: Counter[tuple[str, str, str]] = Counter()
        con.execute("BEGIN")
        try:
            if fresh:
                first_seq = self._delivery_seq + 1
                rows = [
                    (
                        first_seq + offset,
                        d.source,
                        d.delivery_id,
                        d.topic,
                        d.received_at,
                        d.headers,
                        body,
                        d.status,
                        d.reason,
                        len(d.events),
                        codec,  # the table's last column (added by a later migration)
                    )
                    for offset, d in enumerate(p.delivery for p in fresh)
                    for body, codec in (pack(d.body),)
                ]
                if optimistic:
                    appender = self._appender(DELIVERIES)
                    appender.append_rows(rows)
                    appender.flush()
                    new_seqs = {row[0] for row in rows}
                else:
                    new_seqs = self._insert_new(rows)
                event_rows = []
                origins: list[str] = []
                for offset, pending in enumerate(fresh):
                    seq = first_seq + offset
                    d = pending.delivery
                    if seq not in new_seqs:
                        duplicates[(d.source, "duplicate", "")] += 1
                        continue
                    inserted.add((d.source, d.delivery_id))
                    for event in d.events:
                        event_seq += 1
                        event_rows.append((event_seq, seq, d.source, d.received_at, event))
                        origins.append(d.origin)
                if event_rows:
                    # An appender inserts the rows with one statement of this transaction,
                    # without building and registering a frame first.
                    appender = self._appender(EVENTS)
                    appender.append_rows(event_values(event_rows, origins))
                    appender.flush()
                    lines = line_values(event_rows)
                    if lines:
                        appender = self._appender(EVENT_LINES)
                        appender.append_rows(lines)
                        appender.flush()
            if counts or duplicates:
                self._add_counts(counts + duplicates)
            con.execute("COMMIT")
        except BaseException:
            # An appender that failed may still hold rows of this batch: never flush it again.
            self._appenders.clear()
            try:
                con.execute("ROLLBACK")
            except duckdb.Error:
                pass
            raise
        counts.update(duplicates)
        if fresh:
            self._delivery_seq += len(fresh)
            self._event_seq = event_seq
        return inserted

    def _appender(self, table: str) -> duckdb.Appender:
        """The writer's appender for `table`, made once and kept: making one costs ~1.2 ms, a
        sixth of a small batch's write. Each batch flushes it inside its own transaction."""
        appender = self._appenders.get(table)
        if appender is None:
            appender = self._appenders[table] = self._con.appender(table)
        return appender

    def _insert_new(self, rows: Sequence[tuple[object, ...]]) -> set[int]:
        """Insert the delivery rows that are not stored yet; return their seqs."""
        frame = pl.DataFrame(rows, schema=_DELIVERY_SCHEMA, orient="row")
        self._con.register("batch_deliveries", frame)
        try:
            found = self._con.execute(
                f"INSERT INTO {DELIVERIES} SELECT * FROM batch_deliveries "
                "ON CONFLICT DO NOTHING RETURNING delivery_seq"
            ).fetchall()
        finally:
            self._con.unregister("batch_deliveries")
        return {int(r[0]) for r in found}

    def _add_counts(self, counts: Counter[tuple[str, str, str]]) -> None:
        now = datetime.now(UTC)
        frame = pl.DataFrame(
            {
                "source": [k[0] for k in counts],
                "outcome": [k[1] for k in counts],
                "reason": [k[2] for k in counts],
                "count": list(counts.values()),
                "last_at": [now] * len(counts),
            },
            schema={
                "source": pl.String,
                "outcome": pl.String,
                "reason": pl.String,
                "count": pl.Int64,
                "last_at": pl.Datetime("us", "UTC"),
            },
        )
        self._con.register("batch_counts", frame)
        try:
            self._con.execute(
                f"INSERT INTO {INGEST_COUNTS} SELECT * FROM batch_counts ON CONFLICT DO "
                "UPDATE SET count = count + excluded.count, last_at = excluded.last_at"
            )
        finally:
            self._con.unregister("batch_counts")

    @staticmethod
    def _resolve(outcomes: list[tuple[_Pending, Outcome | BaseException]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Pending, Outcome | BaseException]]]
        by_loop = {}
        for pending, outcome in outcomes:
            by_loop.setdefault(pending.loop, []).append((pending, outcome))
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, items)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass


def _settle(items: list[tuple[_Pending, Outcome | BaseException]]) -> None:
    for pending, outcome in items:
        if pending.future.done():
            continue
        if isinstance(outcome, BaseException):
            pending.future.set_exception(outcome)
        else:
            pending.future.set_result(outcome)
