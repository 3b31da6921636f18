"""The ingest endpoint's logic: from an HTTP request to a stored, quarantined or rejected delivery.

Order of checks (each answers with its own status): unknown source 404, body over the limit 413,
platform ping 200, content type 415, signature 401 (a repeated signature, timestamp, id or topic
header included: ambiguous); then the delivery is authentic and is either
stored (200), recognised as a duplicate (200) or quarantined with its reason (202). Storage
trouble, a full writer queue, too many requests at once or low disk space answer 503 with
Retry-After, and never a 2xx for anything that was not committed. A body that does not arrive
within the body read timeout gets 408. An event dated more than `future_tolerance` ahead of the
service clock sends its delivery to quarantine.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from ingest.body_drain import DRAIN_MAX_BYTES, drain
from ingest.errors import (
    BodyTooLarge,
    ClientDisconnected,
    IngestError,
    InvalidSignature,
    RequestTimeout,
    Unavailable,
    UnknownSource,
    UnsupportedMediaType,
)
from ingest.events import CanonicalEvent
from ingest.providers import get_provider
from ingest.providers.base import (
    Provider,
    SignatureError,
    UnusableDelivery,
    refuse_repeated_headers,
)
from ingest.quarantine import FUTURE_TIME, INVALID_JSON, next_step
from ingest.redaction import redacted_body
from ingest.responses import Answer, ingest_error_answer, json_answer, unexpected_error_answer
from ingest.settings import IngestSettings as Settings
from ingest.sink import Sink
from ingest.sources import Source
from ingest.stats import UNKNOWN_SOURCE, IngestStats
from ingest.storage.database import StorageError
from ingest.storage.writer import Delivery, Outcome, Overloaded
from ingest.webhook_request import ClientGone, WebhookRequest

log = logging.getLogger("shoppulse.ingest")

MB = 1024 * 1024
#: Seconds a reading of the database filesystem's free space is reused.
FREE_SPACE_TTL = 0.5

#: DuckDB's words for a database that stopped after a fatal error (a failed checkpoint, say):
#: every later write fails until the process opens the file again.
_FATAL_MARKERS = ("database has been invalidated", "FATAL Error")

Clock = Callable[[], datetime]

#: The status each outcome of an authentic delivery is answered with.
OUTCOME_STATUS = {Outcome.STORED: 200, Outcome.DUPLICATE: 200, Outcome.QUARANTINED: 202}


def utc_now() -> datetime:
    return datetime.now(UTC)


def describe_span(span: timedelta) -> str:
    """A duration in words: "1 day", "6 hours", "90 seconds"."""
    seconds = int(span.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds} second{'' if seconds == 1 else 's'}"


def future_event_reason(
    events: list[CanonicalEvent], now: datetime, tolerance: timedelta
) -> str | None:
    """Why these events cannot be counted yet, if one is dated beyond `now + tolerance`."""
    limit = now + tolerance
    for event in events:
        for name in ("created_at", "updated_at"):
            value: datetime | None = getattr(event, name)
            if value is not None and value > limit:
                return (
                    f"{FUTURE_TIME} {value.isoformat()} ({name} of {event.kind} "
                    f"{event.entity_id[:64]!r}) is more than {describe_span(tolerance)} in the "
                    f"future (service clock {now.isoformat()})"
                )
    return None


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class Intake:
    def __init__(
        self,
        settings: Settings,
        sources: dict[str, Source],
        writer: Sink,
        stats: IngestStats,
        clock: Clock = utc_now,
    ) -> None:
        self.settings = settings
        self.writer = writer
        self.stats = stats
        self.clock = clock
        self.in_flight = 0
        #: More reasons deliveries would not be stored (a composed service adds its own).
        self.readiness_checks: list[Callable[[], str | None]] = []
        self._free_space: tuple[Path, float, int] | None = None
        self._sources = {
            source.id: (source, get_provider(source.provider, settings), source.secret_values())
            for source in sources.values()
        }

    def _reject(self, source_id: str, error: IngestError) -> IngestError:
        self.writer.count(source_id, "rejected", error.code)
        self.stats.record(source_id, "rejected", error.code)
        log.info(
            "delivery rejected",
            extra={
                "source": source_id,
                "outcome": "rejected",
                "status": error.status,
                "reason": error.code,
            },
        )
        return error

    async def _too_large(
        self, request: WebhookRequest, source_id: str, message: str
    ) -> IngestError:
        """The 413 of an oversized body, once the rest of the body has been drained.

        Most senders (Python's urllib, most webhook senders: all that send no `Expect:
        100-continue`) write the whole body before they read an answer. Answering and closing
        while they still write makes their kernel see a reset instead of the 413, so the rest is
        read and discarded first, bounded like nginx's lingering close (`ingest.body_drain`).
        Past a bound the 413 goes out with `Connection: close`.
        """
        headers: dict[str, str] = {}
        declared = request.headers.get("content-length", "")
        if request.headers.get("expect", "").lower() == "100-continue":
            headers["Connection"] = "close"  # the sender waits: it never sends the body
        elif declared.isdigit() and int(declared) > DRAIN_MAX_BYTES:
            headers["Connection"] = "close"  # more than would ever be drained
        elif not await drain(request.receive):
            headers["Connection"] = "close"
        return self._reject(source_id, BodyTooLarge(message, headers=headers))

    async def _read_body(self, request: WebhookRequest, source_id: str) -> bytes:
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise await self._too_large(
                request, source_id, f"the body is {declared} bytes; the limit is {limit}"
            )
        chunks: list[bytes] = []
        size = 0
        timeout = self.settings.body_read_timeout_seconds
        try:
            async with asyncio.timeout(timeout):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        break
                    chunks.append(chunk)
        except TimeoutError:
            raise self._reject(
                source_id,
                RequestTimeout(
                    f"the body did not arrive within {timeout:g} s ({size} bytes received); "
                    "send it again",
                    headers={"Connection": "close"},
                ),
            ) from None
        except ClientGone:
            raise self._reject(
                source_id,
                ClientDisconnected(f"the sender closed the connection after {size} bytes"),
            ) from None
        if size > limit:
            raise await self._too_large(
                request, source_id, f"the body is over the limit of {limit} bytes"
            )
        return b"".join(chunks)

    def _free_bytes(self, db_path: Path) -> int:
        """Free bytes on the filesystem of `db_path`, read at most every FREE_SPACE_TTL seconds
        (a statvfs per delivery costs more than everything else the check does)."""
        now = time.monotonic()
        cached = self._free_space
        if cached is not None and cached[0] is db_path and now - cached[1] < FREE_SPACE_TTL:
            return cached[2]
        free = shutil.disk_usage(db_path.parent).free
        self._free_space = (db_path, now, free)
        return free

    def disk_problem(self) -> str | None:
        """Why the database's filesystem is too full to take deliveries, if it is."""
        need = self.settings.min_free_disk_mb
        if need <= 0:
            return None
        try:
            free = self._free_bytes(self.settings.db_path)
        except OSError as exc:
            return f"cannot read the free space of {self.settings.db_path.parent}: {exc}"
        if free < need * MB:
            return (
                f"disk space low: {free // MB} MB free on the database's filesystem, "
                f"min_free_disk_mb is {need}"
            )
        return None

    def readiness_problem(self) -> str | None:
        """Why deliveries would get 503 now (for /readyz), or None when they would be stored."""
        if not self.writer.healthy:
            return f"the last write failed: {self.writer.last_error}"
        for check in self.readiness_checks:
            problem = check()
            if problem is not None:
                return problem
        return self.disk_problem()

    def liveness_problem(self) -> str | None:
        """Why only a restart helps (for /healthz): DuckDB stopped after a fatal error."""
        error = self.writer.last_error or ""
        if not self.writer.healthy and any(marker in error for marker in _FATAL_MARKERS):
            return (
                f"the database stopped after a fatal error and needs a restart of the service "
                f"(every acknowledged delivery is in its write-ahead log): {error}"
            )
        return None

    async def answer(self, source_id: str, request: WebhookRequest) -> Answer:
        """The answer to one `POST /webhooks/{source_id}`: errors become their error answers,
        anything unexpected a 500 (the log has the traceback)."""
        try:
            return await self.receive(source_id, request)
        except IngestError as exc:
            return ingest_error_answer(exc)
        except Exception as exc:  # never a traceback to the sender
            return unexpected_error_answer("POST", f"/webhooks/{source_id[:64]}", exc)

    async def receive(self, source_id: str, request: WebhookRequest) -> Answer:
        """Receive one delivery; raises IngestError for every answer that is an error."""
        started = time.perf_counter()
        if self.in_flight >= self.settings.max_in_flight:
            self.stats.ack_latency.observe(time.perf_counter() - started)
            raise self._reject(
                source_id if source_id in self._sources else UNKNOWN_SOURCE,
                Unavailable(
                    f"overloaded: {self.in_flight} requests are being handled; retry later",
                    headers={"Retry-After": str(self.settings.retry_after_seconds)},
                ),
            )
        self.in_flight += 1
        try:
            return await self._receive(source_id, request)
        finally:
            self.in_flight -= 1
            self.stats.ack_latency.observe(time.perf_counter() - started)

    async def _receive(self, source_id: str, request: WebhookRequest) -> Answer:
        entry = self._sources.get(source_id)
        if entry is None:
            raise self._reject(
                UNKNOWN_SOURCE,
                UnknownSource(
                    f"no source '{source_id[:64]}' is configured; see `shoppulse sources list`"
                ),
            )
        source, provider, secrets = entry
        body = await self._read_body(request, source.id)
        headers = request.headers
        if provider.is_ping(body, headers):
            return json_answer(200, {"status": "ping", "stored": False})
        if not _is_json(headers.get("content-type", "")):
            raise self._reject(
                source.id,
                UnsupportedMediaType(
                    f"content type '{headers.get('content-type', '')[:80]}' is not JSON; "
                    "send application/json"
                ),
            )
        if secrets or not self.settings.insecure_demo:
            try:
                refuse_repeated_headers(request.raw_headers, provider.single_headers)
                provider.verify(body, headers, secrets, self.clock())
            except SignatureError as exc:
                raise self._reject(source.id, InvalidSignature(str(exc))) from None
        delivery = self._delivery(source, provider, body, headers)
        return await self._store(delivery)

    def _delivery(
        self, source: Source, provider: Provider, body: bytes, headers: dict[str, str]
    ) -> Delivery:
        reason: str | None = None
        payload: Any = None
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            reason = f"{INVALID_JSON}: {exc}"[:300]
        info = provider.delivery_info(body, headers, payload)
        events = []
        received_at = self.clock()
        if reason is None:
            try:
                events = provider.normalize(info.topic, payload, headers)
            except UnusableDelivery as exc:
                reason = str(exc)[:300]
            except (ValueError, TypeError, KeyError, AttributeError, ArithmeticError) as exc:
                reason = f"could not normalize: {type(exc).__name__}: {exc}"[:300]
        if reason is None:
            future = future_event_reason(events, received_at, self.settings.future_tolerance)
            if future is not None:
                reason, events = future[:300], []
        kept = {name: headers[name] for name in provider.kept_headers if name in headers}
        stored_body: bytes | None = None
        if reason is not None:
            stored_body = body  # kept as received, to be replayed after a fix
        elif self.settings.store_raw_bodies:
            stored_body = redacted_body(payload) if self.settings.redact_personal_data else body
        return Delivery(
            source=source.id,
            delivery_id=info.delivery_id,
            topic=info.topic[:128],
            received_at=received_at,
            headers=orjson.dumps(kept).decode(),
            body=stored_body,
            reason=reason,
            events=events,
        )

    async def _store(self, delivery: Delivery) -> Answer:
        retry = {"Retry-After": str(self.settings.retry_after_seconds)}
        disk = self.disk_problem()
        if disk is not None:
            raise self._reject(
                delivery.source, Unavailable(f"not stored: {disk}; retry later", headers=retry)
            )
        try:
            outcome = await self.writer.submit(delivery)
        except Overloaded as exc:
            raise self._reject(
                delivery.source, Unavailable(f"overloaded: {exc}; retry later", headers=retry)
            ) from None
        except StorageError as exc:
            raise self._reject(
                delivery.source, Unavailable(f"not stored: {exc}; retry later", headers=retry)
            ) from None
        stat = "accepted" if outcome is Outcome.STORED else outcome.value
        self.stats.record(delivery.source, stat)
        log.info(
            "delivery %s",
            outcome.value,
            extra={
                "source": delivery.source,
                "delivery_id": delivery.delivery_id,
                "topic": delivery.topic,
                "outcome": outcome.value,
                "reason": delivery.reason,
            },
        )
        body: dict[str, Any] = {
            "status": outcome.value,
            "source": delivery.source,
            "delivery_id": delivery.delivery_id,
        }
        if outcome is Outcome.QUARANTINED:
            body["reason"] = delivery.reason
            body["next"] = f"stored in quarantine; {next_step(delivery.reason)}"
        if outcome is Outcome.STORED:
            body["events"] = len(delivery.events)
        return json_answer(OUTCOME_STATUS[outcome], body)
