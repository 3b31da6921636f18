"""An intake replica's sink: each authentic delivery is published to the log, and the endpoint's
2xx waits for the log's acknowledgement (the message is on the stream's replicas).

The log answering "duplicate" (the same `Nats-Msg-Id` inside the stream's duplicate window) makes
the answer `duplicate`; the store's ledger keeps deduplicating forever. When the log cannot be
reached, does not answer in time, or refuses the message (full, no quorum), `submit` raises
`StorageError` and the sender gets 503 with Retry-After: nothing was acknowledged.

Rejections (401, 404, 413, ...) store nothing; their counts are summed per source and sent to the
log every `counts_interval_seconds`, so the store shows them with its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections import Counter, defaultdict

import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import APIError, NoStreamResponseError

from ingest.storage.database import StorageError
from ingest.storage.writer import Delivery, Outcome
from shoppulse.scale_out import envelope
from shoppulse.scale_out.settings import LogSettings
from shoppulse.scale_out.signing import LogSigner
from shoppulse.scale_out.stream import delivery_subject, rejection_subject

log = logging.getLogger("shoppulse.intake")

#: Seconds after a failed publish during which readiness reports it (unless one succeeds).
FAILURE_MEMORY = 5.0


def replica_name() -> str:
    """This replica's name in counts and in the log's connection list: host and process id."""
    return f"{socket.gethostname()}-{os.getpid()}"


class LogSink:
    """Publishes deliveries to the log (see the module docstring)."""

    def __init__(
        self, nc: Client, js: JetStreamContext, settings: LogSettings, replica: str
    ) -> None:
        self._nc = nc
        self._js = js
        self._settings = settings
        self._signer = LogSigner(settings.signing_keys)
        self.replica = replica
        self._in_flight = 0
        self._failed_at = 0.0
        self._error: str | None = None
        self._counts: defaultdict[str, Counter[tuple[str, str]]] = defaultdict(Counter)
        self._counts_seq = 0
        self._flusher: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ Sink

    @property
    def healthy(self) -> bool:
        if not self._nc.is_connected:
            return False
        return time.monotonic() - self._failed_at > FAILURE_MEMORY

    @property
    def last_error(self) -> str | None:
        if not self._nc.is_connected:
            return f"the log at {self._settings.display_url} is unreachable (reconnecting)"
        return None if self.healthy else self._error

    @property
    def queue_depth(self) -> int:
        return self._in_flight

    @property
    def events_stored_through(self) -> int | None:
        return None  # the store numbers the events it stores

    async def submit(self, delivery: Delivery) -> Outcome:
        if not self._nc.is_connected:
            raise self._failed(f"the log at {self._settings.display_url} is unreachable")
        msg_id = envelope.message_id(delivery.source, delivery.delivery_id)
        subject, data = delivery_subject(delivery.source), envelope.encode(delivery)
        self._in_flight += 1
        try:
            ack = await self._js.publish(
                subject,
                data,
                timeout=self._settings.publish_timeout_seconds,
                headers=self._signer.headers(subject, msg_id, data),
            )
        except (TimeoutError, nats.errors.TimeoutError):
            raise self._failed(
                f"the log did not acknowledge within {self._settings.publish_timeout_seconds:g} s"
            ) from None
        except (NoStreamResponseError, nats.errors.NoRespondersError):
            raise self._failed(
                "the log has no stream for this source or no quorum (a leader is being elected)"
            ) from None
        except APIError as exc:
            raise self._failed(f"the log refused the delivery: {exc.description}") from None
        except nats.errors.Error as exc:
            raise self._failed(f"the log is unavailable: {type(exc).__name__}: {exc}") from None
        finally:
            self._in_flight -= 1
        if ack.duplicate:
            self.count(delivery.source, "duplicate", "")  # the store counts it with its own
            return Outcome.DUPLICATE
        return Outcome.QUARANTINED if delivery.reason is not None else Outcome.STORED

    def count(self, source: str, outcome: str, reason: str) -> None:
        self._counts[source][(outcome, reason[:200])] += 1

    def _failed(self, problem: str) -> StorageError:
        self._failed_at = time.monotonic()
        self._error = problem
        return StorageError(problem)

    # ------------------------------------------------------------------ counts

    def start(self) -> None:
        self._flusher = asyncio.get_running_loop().create_task(self._flush_forever())

    async def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.flush_counts()

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self._settings.counts_interval_seconds)
            await self.flush_counts()

    async def flush_counts(self) -> None:
        """Send the rejection counts gathered since the last flush (kept for later on failure)."""
        counts, self._counts = self._counts, defaultdict(Counter)
        for source, by_reason in counts.items():
            self._counts_seq += 1
            subject = rejection_subject(source)
            data = envelope.encode_counts(self.replica, dict(by_reason))
            msg_id = f"counts:{self.replica}:{self._counts_seq}"
            try:
                await self._js.publish(
                    subject,
                    data,
                    timeout=self._settings.publish_timeout_seconds,
                    headers=self._signer.headers(subject, msg_id, data),
                )
            except (TimeoutError, nats.errors.Error) as exc:
                log.warning("rejection counts not sent yet: %s", exc)
                self._counts[source].update(by_reason)
