"""The store's side of the log: a durable pull consumer feeding the service's writer.

Messages are fetched in batches and handed to the same writer the webhook endpoint uses (group
commit, the `(source, delivery id)` ledger); each message is acknowledged only after the commit
that holds its delivery, so a crash before the acknowledgement delivers it again and the ledger
finds it a duplicate: every delivery the log acknowledged is stored exactly once. Fetching the
next batch overlaps the commit of the last one; the order of the log is the order of the writer's
queue.

The consumer's lag (messages not yet committed, age of the oldest of them) is published on
/api/v1/ingest/stats and /readyz (section `log`) and on /metrics.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from prometheus_client import Gauge

from ingest.stats import IngestStats
from ingest.storage.database import StorageError
from ingest.storage.writer import Delivery, Outcome, Overloaded, Writer
from shoppulse.scale_out import envelope
from shoppulse.scale_out.settings import LogSettings
from shoppulse.scale_out.signing import LogSigner
from shoppulse.scale_out.stream import DELIVERIES, REJECTIONS, filter_subjects
from shoppulse.scale_out.unverified import unverified_delivery

log = logging.getLogger("shoppulse.store")

#: Seconds between two readings of the consumer's position (lag) from the log.
LAG_INTERVAL = 1.0
#: Reason counted when a message on the deliveries subjects cannot be read.
MALFORMED = "malformed_log_message"


def consumer_name(sources: list[str] | None) -> str:
    """The durable consumer of a store: one per set of sources (`store-all` without a filter)."""
    if not sources:
        return "store-all"
    name = "store-" + "-".join(sorted(sources))
    if len(name) <= 64:
        return name
    return "store-" + hashlib.sha256(",".join(sorted(sources)).encode()).hexdigest()[:24]


@dataclass
class Lag:
    """How far the store is behind the log."""

    pending: int = 0  # messages the consumer has not taken yet
    unacked: int = 0  # taken, not yet committed and acknowledged
    oldest_age_seconds: float = 0.0  # age of the oldest message not yet committed
    committed: int = 0  # messages committed and acknowledged since the start
    reachable: bool = True
    problem: str | None = None
    checked_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "pending": self.pending,
            "unacked": self.unacked,
            # unknown while the position cannot be read: never "caught up" by a stale reading
            "behind": self.pending + self.unacked if self.reachable else None,
            "oldest_unacked_age_seconds": round(self.oldest_age_seconds, 3),
            "committed_since_start": self.committed,
            "reachable": self.reachable,
            "problem": self.problem,
            "checked_at": self.checked_at.isoformat() if self.checked_at else None,
        }


class LogConsumer:
    """Consumes the deliveries of `sources` (all without) into `writer`."""

    def __init__(
        self,
        nc: Client,
        js: JetStreamContext,
        settings: LogSettings,
        writer: Writer,
        stats: IngestStats,
        *,
        sources: list[str] | None = None,
        retry_after_seconds: float = 5.0,
    ) -> None:
        self._nc = nc
        self._js = js
        self._settings = settings
        self._signer = LogSigner(settings.signing_keys)
        self._writer = writer
        self._stats = stats
        self._sources = sorted(sources) if sources else None
        self._retry_after = retry_after_seconds
        self.name = consumer_name(self._sources)
        self.lag = Lag()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._settling: set[asyncio.Task[None]] = set()
        # Batches handed to the writer and not yet acknowledged; bounded by the writer's queue.
        self._slots = asyncio.Semaphore(4)
        self._register_gauges(stats)

    def _register_gauges(self, stats: IngestStats) -> None:
        labels = {"consumer": self.name}
        pending = Gauge(
            "shoppulse_log_pending_messages",
            "Messages of the log the store has not committed yet (pending and unacknowledged).",
            list(labels),
            registry=stats.registry,
        )
        pending.labels(**labels).set_function(lambda: self.lag.pending + self.lag.unacked)
        age = Gauge(
            "shoppulse_log_oldest_unacked_age_seconds",
            "Age of the oldest message of the log the store has not committed yet.",
            list(labels),
            registry=stats.registry,
        )
        age.labels(**labels).set_function(lambda: self.lag.oldest_age_seconds)
        reachable = Gauge(
            "shoppulse_log_reachable",
            "1 while the store reaches the log, else 0.",
            list(labels),
            registry=stats.registry,
        )
        reachable.labels(**labels).set_function(lambda: 1.0 if self.lag.reachable else 0.0)

    def readiness_problem(self) -> str | None:
        if not self._nc.is_connected:
            return f"the log at {self._settings.display_url} is unreachable (reconnecting)"
        return None

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> None:
        config = ConsumerConfig(
            durable_name=self.name,
            description="ShopPulse store (docs/scale-out.md)",
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self._settings.ack_wait_seconds,
            max_deliver=-1,
            max_ack_pending=max(4 * self._settings.fetch_batch, 1000),
            filter_subjects=filter_subjects(self._sources),
        )
        await self._js.add_consumer(self._settings.stream, await self._resume(config))
        self._sub = await self._js.pull_subscribe_bind(self.name, stream=self._settings.stream)
        await self._read_lag()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._consume()), loop.create_task(self._watch_lag())]
        log.info(
            "consuming the log at %s as %s (%s)",
            self._settings.display_url,
            self.name,
            ", ".join(self._sources) if self._sources else "every source",
        )

    async def _resume(self, config: ConsumerConfig) -> ConsumerConfig:
        """The consumer's configuration for this start.

        Messages a previous run of the store took and did not acknowledge (it was killed) would
        come again only after `ack_wait`; a store is the only user of its consumer, so it starts
        the consumer again just after its acknowledgement floor instead: they come at once, and
        those already committed are duplicates to the ledger.
        """
        stream = self._settings.stream
        try:
            info = await self._js.consumer_info(stream, self.name)
        except nats.js.errors.NotFoundError:
            return config
        if info.num_ack_pending and info.ack_floor is not None:
            floor = info.ack_floor.stream_seq
            log.info(
                "%d messages were taken by the last run and not acknowledged: resuming after "
                "stream sequence %d",
                info.num_ack_pending,
                floor,
            )
            await self._js.delete_consumer(stream, self.name)
            config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
            config.opt_start_seq = floor + 1
        else:  # keep where it starts (that cannot change on an existing consumer)
            config.deliver_policy = info.config.deliver_policy
            config.opt_start_seq = info.config.opt_start_seq
        return config

    async def stop(self) -> None:
        # The client may turn a cancelled fetch into a timeout: the loops also check the flag.
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5.0)
        if self._settling:  # commits under way: acknowledge what they stored
            await asyncio.wait(self._settling, timeout=10.0)

    # ------------------------------------------------------------------ consuming

    async def _consume(self) -> None:
        while not self._stopping:
            await self._slots.acquire()
            try:
                messages = await self._sub.fetch(self._settings.fetch_batch, timeout=1.0)
            except (TimeoutError, nats.errors.TimeoutError):
                self._slots.release()
                continue
            except nats.errors.Error as exc:
                self._slots.release()
                log.warning("fetching from the log failed: %s", exc)
                await asyncio.sleep(0.5)
                continue
            except BaseException:
                self._slots.release()
                raise
            task = asyncio.get_running_loop().create_task(self._handle(messages))
            self._settling.add(task)
            task.add_done_callback(self._settling.discard)

    async def _handle(self, messages: list[Msg]) -> None:
        try:
            await self._store(messages)
        except Exception:
            log.exception("a batch of %d log messages failed; they will come again", len(messages))
        finally:
            self._slots.release()

    async def _store(self, messages: list[Msg]) -> None:
        deliveries: list[tuple[Msg, Delivery]] = []
        counts: list[Msg] = []
        for msg in messages:
            problem = self._signer.problem(msg.subject, msg.headers, msg.data)
            if msg.subject.startswith(REJECTIONS + "."):
                if problem is None:
                    self._count(msg)
                else:
                    log.error("rejection counts %s dropped: %s", _seq(msg), problem)
                counts.append(msg)
                continue
            if problem is not None:
                log.error("log message %s quarantined: %s", _seq(msg), problem)
                deliveries.append((msg, unverified_delivery(msg.subject, msg.data, problem)))
                continue
            try:
                deliveries.append((msg, envelope.decode(msg.data)))
            except envelope.MalformedMessage as exc:
                source = msg.subject.removeprefix(DELIVERIES + ".")
                log.error("log message %s of %s skipped: %s", _seq(msg), source, exc)
                self._writer.count(source, "rejected", MALFORMED)
                self._stats.record(source, "rejected", MALFORMED)
                await msg.term()
        outcomes = await asyncio.gather(
            *(self._enqueue(delivery) for _, delivery in deliveries), return_exceptions=True
        )
        failed = 0
        for (msg, delivery), outcome in zip(deliveries, outcomes, strict=True):
            if isinstance(outcome, Outcome):
                stat = "accepted" if outcome is Outcome.STORED else outcome.value
                self._stats.record(delivery.source, stat)
                await msg.ack()
                self.lag.committed += 1
            elif isinstance(outcome, (StorageError, Overloaded)):
                failed += 1
                await msg.nak(delay=self._retry_after)
            else:
                raise outcome
        for msg in counts:
            await msg.ack()
        if failed:
            log.warning(
                "%d deliveries from the log not stored (they come again in %g s): %s",
                failed,
                self._retry_after,
                self._writer.last_error,
            )

    def _enqueue(self, delivery: Delivery) -> asyncio.Future[Outcome]:
        try:
            return self._writer.enqueue(delivery)
        except Overloaded as exc:
            failed: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
            failed.set_exception(exc)
            return failed

    def _count(self, msg: Msg) -> None:
        source = msg.subject.removeprefix(REJECTIONS + ".")
        try:
            rows = envelope.decode_counts(msg.data)
        except envelope.MalformedMessage as exc:
            log.error("rejection counts of %s skipped: %s", source, exc)
            return
        for outcome, reason, count in rows:
            for _ in range(min(count, 1_000_000)):
                self._writer.count(source, outcome, reason)
                self._stats.record(source, outcome, reason)

    # ------------------------------------------------------------------ lag

    async def _watch_lag(self) -> None:
        while not self._stopping:
            await asyncio.sleep(LAG_INTERVAL)
            await self._read_lag()

    async def _read_lag(self) -> None:
        lag = self.lag
        try:
            info = await self._sub.consumer_info()
            lag.pending = info.num_pending or 0
            lag.unacked = info.num_ack_pending or 0
            lag.oldest_age_seconds = 0.0
            if lag.pending + lag.unacked and info.ack_floor is not None:
                lag.oldest_age_seconds = await self._age_after(info.ack_floor.stream_seq)
            lag.reachable, lag.problem = True, None
        except (TimeoutError, nats.errors.Error) as exc:
            lag.reachable = False
            lag.problem = f"cannot read the consumer's position: {type(exc).__name__}: {exc}"
        lag.checked_at = datetime.now(UTC)

    async def _age_after(self, floor: int) -> float:
        """Age of the oldest message of this store after stream sequence `floor`."""
        subjects = [s for s in filter_subjects(self._sources) if s.startswith(DELIVERIES)]
        oldest: float | None = None
        for subject in subjects[:20]:
            try:
                found = await self._js.get_msg(
                    self._settings.stream, seq=floor + 1, subject=subject, next=True
                )
            except nats.js.errors.NotFoundError:
                continue
            stamp = _timestamp(found.time)
            if stamp is not None and (oldest is None or stamp < oldest):
                oldest = stamp
        return max(0.0, time.time() - oldest) if oldest is not None else 0.0


def _seq(msg: Msg) -> str:
    try:
        return str(msg.metadata.sequence.stream)
    except Exception:
        return "?"


def _timestamp(value: object) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str):
        text = value.rstrip("Z")
        head, _, fraction = text.partition(".")
        try:
            base = datetime.fromisoformat(head).replace(tzinfo=UTC)
        except ValueError:
            return None
        return base.timestamp() + (float(f"0.{fraction}") if fraction.isdigit() else 0.0)
    return None
