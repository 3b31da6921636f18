"""The ingest endpoint's logic: from an HTTP request to a stored, quarantined or rejected delivery.

Order of checks (each answers with its own status): unknown source 404, body over the limit 413,
platform ping 200, content type 415, signature 401; then the delivery is authentic and is either
stored (200), recognised as a duplicate (200) or quarantined with its reason (202). Storage
trouble or a full writer queue answers 503 with Retry-After, and never a 2xx for anything that
was not committed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ingest.errors import (
    BodyTooLarge,
    IngestError,
    InvalidSignature,
    Unavailable,
    UnknownSource,
    UnsupportedMediaType,
)
from ingest.providers import get_provider
from ingest.providers.base import Provider, SignatureError, UnusableDelivery
from ingest.settings import Settings
from ingest.sources import Source
from ingest.stats import IngestStats
from ingest.storage.database import StorageError
from ingest.storage.writer import Delivery, Outcome, Overloaded, Writer

log = logging.getLogger("shoppulse.ingest")

UNKNOWN_SOURCE = "_unknown"

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def json_response(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


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
        writer: Writer,
        stats: IngestStats,
        clock: Clock = utc_now,
    ) -> None:
        self.settings = settings
        self.writer = writer
        self.stats = stats
        self.clock = clock
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

    async def _read_body(self, request: Request, source_id: str) -> bytes:
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise self._reject(
                source_id, BodyTooLarge(f"the body is {declared} bytes; the limit is {limit}")
            )
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise self._reject(
                    source_id, BodyTooLarge(f"the body is over the limit of {limit} bytes")
                )
            chunks.append(chunk)
        return b"".join(chunks)

    async def receive(self, source_id: str, request: Request) -> Response:
        started = time.perf_counter()
        try:
            return await self._receive(source_id, request)
        finally:
            self.stats.ack_latency.observe(time.perf_counter() - started)

    async def _receive(self, source_id: str, request: Request) -> Response:
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
        headers = {name.lower(): value for name, value in request.headers.items()}
        if provider.is_ping(body, headers):
            return json_response(200, {"status": "ping", "stored": False})
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
            reason = f"invalid JSON: {exc}"[:300]
        info = provider.delivery_info(body, headers, payload)
        events = []
        if reason is None:
            try:
                events = provider.normalize(info.topic, payload, headers)
            except UnusableDelivery as exc:
                reason = str(exc)[:300]
            except (ValueError, TypeError, KeyError, AttributeError, ArithmeticError) as exc:
                reason = f"could not normalize: {type(exc).__name__}: {exc}"[:300]
        kept = {name: headers[name] for name in provider.kept_headers if name in headers}
        keep_body = reason is not None or self.settings.store_raw_bodies
        return Delivery(
            source=source.id,
            delivery_id=info.delivery_id,
            topic=info.topic[:128],
            received_at=self.clock(),
            headers=orjson.dumps(kept).decode(),
            body=body if keep_body else None,
            reason=reason,
            events=events,
        )

    async def _store(self, delivery: Delivery) -> Response:
        retry = {"Retry-After": str(self.settings.retry_after_seconds)}
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
            body["next"] = "stored in quarantine; fix the mapping, then `shoppulse replay`"
            return json_response(202, body)
        if outcome is Outcome.STORED:
            body["events"] = len(delivery.events)
        return json_response(200, body)
