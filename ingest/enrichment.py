"""BigCommerce order enrichment: fetch the amounts that BigCommerce order webhooks leave out.

BigCommerce order webhooks carry only the order id, so their canonical events have no currency
and no amounts (such an order counts in `orders` and in `orders_without_amounts`, but in no money
figure). For a bigcommerce source configured with `store_hash` and `api_token`, the enricher
fetches every order whose current version lacks amounts from the store API and stores what it
learns as one more canonical order event, through the writer, so the metrics fold picks it up
with the normal version ordering. It runs on its own thread and never delays a webhook's
acknowledgement.

The request and the fields read from the answer are in ingest/bigcommerce_api.py.

Version. The event's `updated_at` is the order's `date_modified`, raised to the newest
`updated_at` among the order's events when the fetch started: BigCommerce dates a webhook by its
dispatch, seconds after the change, so `date_modified` alone would rank the fetched order (which
already includes that change) below the amount-less webhook version. Before the event is
written, on the writer thread, the order is read again: when a newer event of the order arrived
during the fetch, nothing is written and the order is fetched again; when it already has amounts
or is deleted, nothing is written either. So enriching is idempotent, and a later status webhook
(which carries no amounts) makes the enricher fetch the order again.

Which orders: on start, every order of an enriched source whose current version has no currency
(a backfill); then those touched by newer events (an `event_seq` cursor, polled every
`poll_interval` seconds). The enriched event belongs to the delivery of the version it completes
(`delivery_seq`); that delivery's `event_count` stays the number of events normalized from it.

Failures. Timeouts, connection errors, 429 and 5xx are retried with exponential backoff
(`backoff_base` doubling up to `backoff_max`; a 429's `X-Rate-Limit-Time-Reset-Ms` or
`Retry-After` is honoured) up to `max_attempts` requests. A 404 (no such order), 401/403 (token
refused), another 4xx, a malformed answer, or running out of attempts gives up: it is logged and
the order keeps counting without amounts until a newer event of it arrives (or the service
restarts, which tries once more). Refund amounts are not fetched: BigCommerce refunds stay at
no amount.

Line items. With the order, the enricher fetches its products (ingest/bigcommerce_api.py) and
stores them as the event's lines. A transient failure of that request retries the whole order;
any other failure stores the amounts without lines (logged).
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import CancelledError
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb

from ingest.bigcommerce_api import FetchFailed, OrdersApi, order_event
from ingest.events import CanonicalEvent
from ingest.intake import Clock
from ingest.sources import Source
from ingest.storage.schema import EVENTS, FILL
from ingest.storage.writer import Writer

log = logging.getLogger("shoppulse.enrichment")

_OLDEST = datetime(1900, 1, 1, tzinfo=UTC)


# ----------------------------------------------------------------------------- order state


@dataclass(frozen=True, slots=True)
class OrderState:
    """What the stored events say about one order."""

    last_seq: int  # the newest event of the order
    latest_seq: int  # the current version (greatest updated_at, then event_seq)
    latest_delivery: int
    latest_updated_at: datetime | None
    has_amounts: bool
    deleted: bool

    @property
    def needs_amounts(self) -> bool:
        return not self.deleted and not self.has_amounts


_STATE_COLUMNS = "source, entity_id, event_seq, delivery_seq, updated_at, currency, deleted"


def _states(rows: Sequence[tuple[Any, ...]]) -> dict[tuple[str, str], OrderState]:
    """Reduce order event rows (`_STATE_COLUMNS`) to each order's state."""
    grouped: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
    for row in rows:
        grouped.setdefault((row[0], row[1]), []).append(row)
    states = {}
    for key, events in grouped.items():
        versions = [e for e in events if not e[6]]
        deleted = len(versions) < len(events)
        latest = max(versions or events, key=lambda e: (e[4] or _OLDEST, e[2]))
        states[key] = OrderState(
            last_seq=max(int(e[2]) for e in events),
            latest_seq=int(latest[2]),
            latest_delivery=int(latest[3]),
            latest_updated_at=latest[4],
            has_amounts=latest[5] is not None,
            deleted=deleted,
        )
    return states


def order_state(con: duckdb.DuckDBPyConnection, source: str, order_id: str) -> OrderState | None:
    rows = con.execute(
        f"SELECT {_STATE_COLUMNS} FROM {EVENTS} "
        "WHERE kind = 'order' AND source = ? AND entity_id = ?",
        [source, order_id],
    ).fetchall()
    return _states(rows).get((source, order_id))


# ----------------------------------------------------------------------------- the worker


@dataclass(order=True)
class _Task:
    due: float
    source: str = field(compare=False)
    order_id: str = field(compare=False)
    attempt: int = field(default=1, compare=False)


class OrderEnricher:
    """Fetches missing order amounts for the bigcommerce sources that have API credentials."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        writer: Writer,
        sources: Mapping[str, Source],
        clock: Clock,
        *,
        poll_interval: float = 0.5,
        max_attempts: int = 6,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        timeout: float = 10.0,
        write_timeout: float = 30.0,
    ) -> None:
        self.con = con
        self.writer = writer
        self.clock = clock
        self.sources = {
            sid: s
            for sid, s in sources.items()
            if s.provider == "bigcommerce" and s.has_api_credentials
        }
        self.poll_interval = poll_interval
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.timeout = timeout
        self.write_timeout = write_timeout
        self.enriched = 0
        self.gave_up = 0
        self.requests = 0
        self.last_error: str | None = None
        self._apis: dict[str, OrdersApi] = {}
        self._cursor = 0
        self._heap: list[_Task] = []
        self._scheduled: set[tuple[str, str]] = set()
        self._given_up: dict[tuple[str, str], int] = {}  # -> the newest event seq at giving up
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="shoppulse-enrichment", daemon=True)
        self._reader: duckdb.DuckDBPyConnection | None = None

    @property
    def active(self) -> bool:
        return bool(self.sources)

    def start(self) -> None:
        """Start the thread (only when a source has credentials)."""
        if not self.active:
            return
        self._reader = self.con.cursor()
        self._apis = {sid: OrdersApi(s, timeout=self.timeout) for sid, s in self.sources.items()}
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        for api in self._apis.values():
            api.close()
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.scan()
                while self._heap and self._heap[0].due <= time.monotonic():
                    if self._stop.is_set():
                        return
                    self._process(heapq.heappop(self._heap))
            except Exception as exc:  # keep going: the next round retries from the cursor
                self.last_error = str(exc)[:500]
                log.exception("order enrichment round failed")
            wait = self.poll_interval
            if self._heap:
                wait = min(wait, max(self._heap[0].due - time.monotonic(), 0.0))
            self._stop.wait(wait)

    def scan(self) -> int:
        """Schedule the orders that lack amounts among those touched since the cursor."""
        con = self._reader
        if con is None:
            return 0
        row = con.execute(f"SELECT coalesce(max(event_seq), 0) FROM {EVENTS}").fetchone()
        upto = int(row[0]) if row else 0
        if upto <= self._cursor:
            return 0
        listed = ", ".join("?" for _ in self.sources)
        rows = con.execute(
            f"WITH touched AS (SELECT DISTINCT source, entity_id FROM {EVENTS} "
            f"WHERE event_seq > ? AND event_seq <= ? AND kind = 'order' AND source IN ({listed})) "
            f"SELECT {', '.join('e.' + c for c in _STATE_COLUMNS.split(', '))} "
            f"FROM {EVENTS} e JOIN touched t ON e.source = t.source AND e.entity_id = t.entity_id "
            "WHERE e.kind = 'order'",
            [self._cursor, upto, *self.sources],
        ).fetchall()
        self._cursor = upto
        scheduled = 0
        for key, state in _states(rows).items():
            if not state.needs_amounts or key in self._scheduled:
                continue
            if self._given_up.get(key, -1) >= state.last_seq:
                continue  # nothing new since giving up
            self._schedule(_Task(time.monotonic(), *key))
            scheduled += 1
        return scheduled

    def _schedule(self, task: _Task) -> None:
        self._scheduled.add((task.source, task.order_id))
        heapq.heappush(self._heap, task)

    def _process(self, task: _Task) -> None:
        key = (task.source, task.order_id)
        self._scheduled.discard(key)
        assert self._reader is not None
        state = order_state(self._reader, *key)
        if state is None or not state.needs_amounts:
            return
        self.requests += 1
        api = self._apis[task.source]
        try:
            order = api.order(task.order_id)
            event = order_event(
                order,
                task.order_id,
                not_before=state.latest_updated_at,
                products=self._products(api, task.order_id),
            )
        except FetchFailed as exc:
            self._failed(task, state, exc)
            return
        try:
            outcome = self._write(task.source, state, event)
        except (TimeoutError, CancelledError, duckdb.Error) as exc:
            self._failed(task, state, FetchFailed(f"not stored: {exc}", transient=True))
            return
        if outcome == "enriched":
            self.enriched += 1
            log.info(
                "order %s of %s enriched from the store API",
                task.order_id,
                task.source,
                extra={"source": task.source, "outcome": "enriched"},
            )

    def _products(self, api: OrdersApi, order_id: str) -> list[Mapping[str, Any]] | None:
        """The order's products; None when they cannot be read (the amounts matter more: the
        order is stored without lines). A transient failure retries the whole order."""
        self.requests += 1
        try:
            return api.products(order_id)
        except FetchFailed as exc:
            if exc.transient:
                raise
            log.warning("order %s: its products stay unknown: %s", order_id, exc)
            return None

    def _failed(self, task: _Task, state: OrderState, exc: FetchFailed) -> None:
        self.last_error = str(exc)
        key = (task.source, task.order_id)
        if exc.transient and task.attempt < self.max_attempts:
            delay = min(self.backoff_max, self.backoff_base * 2 ** (task.attempt - 1))
            delay = max(delay, min(exc.retry_after or 0.0, self.backoff_max))
            log.info(
                "order %s of %s: %s; retrying in %.1f s (attempt %d of %d)",
                task.order_id,
                task.source,
                exc,
                delay,
                task.attempt + 1,
                self.max_attempts,
            )
            self._schedule(
                _Task(time.monotonic() + delay, task.source, task.order_id, task.attempt + 1)
            )
            return
        self.gave_up += 1
        self._given_up[key] = state.last_seq
        log.warning(
            "order %s of %s stays without amounts: %s (after %d attempt%s); it counts in "
            "orders but in no money figure",
            task.order_id,
            task.source,
            exc,
            task.attempt,
            "" if task.attempt == 1 else "s",
            extra={"source": task.source, "outcome": "enrichment_failed"},
        )

    def _write(self, source: str, seen: OrderState, event: CanonicalEvent) -> str:
        """Store `event` through the writer unless the order changed meanwhile."""
        writer = self.writer
        received_at = self.clock()

        def job(con: duckdb.DuckDBPyConnection) -> str:
            con.execute("BEGIN")
            try:
                now = order_state(con, source, event.entity_id)
                if now is None or not now.needs_amounts:
                    con.execute("ROLLBACK")
                    return "not needed"
                if now.latest_seq != seen.latest_seq:
                    con.execute("ROLLBACK")
                    return "stale"  # a newer version arrived: the next scan fetches again
                writer.append_events(con, now.latest_delivery, source, received_at, [event], FILL)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            return "enriched"

        return writer.submit_job(job).result(timeout=self.write_timeout)
