"""Replay: normalize quarantined deliveries again and move the ones that now pass.

A quarantined delivery keeps its raw body and the headers worth keeping (`kept_headers` of its
provider). Replaying it runs the same steps as the intake after verification: parse the JSON,
read the topic (`delivery_info`), `normalize`, and refuse event times more than `future_tolerance`
ahead of the clock. A delivery that now passes leaves quarantine in one transaction: its
`deliveries` row becomes `accepted` (reason cleared, `event_count` set, the raw body kept or
cleared like an accepted delivery's) and its events are inserted with fresh event seqs through
the writer, so the metrics worker folds them like any new event. A delivery that still fails
stays quarantined with its (possibly new) reason.

Signatures are not verified again: they were verified when the delivery arrived (nothing
unverified is ever stored), and the signature headers are not kept. The delivery id never
changes.

Replay is idempotent: only rows still `quarantined` are read, and the move is an update guarded
by `status = 'quarantined'`, so replaying twice (or two replays at once) moves a delivery once.

Work is done in chunks ordered by `delivery_seq` (`replay_chunk`, one transaction each); the
caller passes the last seq of a chunk as `after_seq` of the next. Inside the service each chunk is
one writer job (`replay_on_writer`), so webhook batches are committed between chunks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import duckdb
import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ingest.events import CanonicalEvent
from ingest.intake import future_event_reason
from ingest.providers import get_provider
from ingest.providers.base import Provider, UnusableDelivery
from ingest.quarantine import BODY_NOT_KEPT, INVALID_JSON, QuarantineFilter, count_quarantined
from ingest.redaction import redacted_body
from ingest.settings import IngestSettings
from ingest.sources import Source
from ingest.storage.body_codec import pack, unpack
from ingest.storage.schema import DELIVERIES, REPLAY
from ingest.storage.writer import Writer

log = logging.getLogger("shoppulse.replay")

#: Reasons that start with this are never replayed: nothing proves who sent the delivery (a
#: message on the scale-out log that no intake replica signed, docs/scale-out.md).
UNVERIFIED = "unverified log message"

#: Deliveries examined per transaction (and per writer job inside the service).
CHUNK = 200
#: Deliveries that stay in quarantine listed in one answer (the counts are always complete).
LISTED_MAX = 100


class AppendEvents(Protocol):
    """`Writer.append_events`: inserts events for a stored delivery with fresh event seqs."""

    def __call__(
        self,
        con: duckdb.DuckDBPyConnection,
        delivery_seq: int,
        source: str,
        received_at: datetime,
        events: Sequence[CanonicalEvent],
        origin: str = ...,
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class Verdict:
    """What replaying one delivery gives."""

    delivery_seq: int
    source: str
    delivery_id: str
    topic: str
    received_at: datetime
    previous_reason: str | None
    reason: str | None  # None: it passes now
    events: list[CanonicalEvent] = field(default_factory=list)
    body: bytes | None = None  # what to keep as the accepted delivery's raw body
    configured: bool = True

    @property
    def passes(self) -> bool:
        return self.configured and self.reason is None

    def listed(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "delivery_id": self.delivery_id,
            "topic": self.topic,
            "received_at": self.received_at.astimezone(UTC).isoformat(),
            "reason": self.reason,
            "previous_reason": self.previous_reason,
        }


@dataclass(slots=True)
class ReplayReport:
    """Counts of one replay (or of one chunk of it)."""

    dry_run: bool = False
    total: int | None = None  # matching deliveries after `after_seq` when the replay began
    examined: int = 0
    moved: int = 0  # out of quarantine (dry run: would move)
    stayed: int = 0  # still failing, with their reason
    skipped: int = 0  # their source is not configured: left as they are
    events: int = 0  # events inserted (dry run: would insert)
    reasons_changed: int = 0
    next_after: int | None = None  # the `after_seq` of the next chunk; None when done
    still_quarantined: list[dict[str, Any]] = field(default_factory=list)
    moved_by_source: dict[str, int] = field(default_factory=dict)

    def add(self, other: ReplayReport) -> None:
        if self.total is None:
            self.total = other.total
        self.examined += other.examined
        self.moved += other.moved
        self.stayed += other.stayed
        self.skipped += other.skipped
        self.events += other.events
        self.reasons_changed += other.reasons_changed
        self.next_after = other.next_after
        room = LISTED_MAX - len(self.still_quarantined)
        self.still_quarantined.extend(other.still_quarantined[: max(room, 0)])
        for source, count in other.moved_by_source.items():
            self.moved_by_source[source] = self.moved_by_source.get(source, 0) + count

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "total": self.total,
            "examined": self.examined,
            "moved": self.moved,
            "stayed": self.stayed,
            "skipped": self.skipped,
            "events": self.events,
            "reasons_changed": self.reasons_changed,
            "next_after": self.next_after,
            "still_quarantined": self.still_quarantined,
        }


def providers_for(sources: Mapping[str, Source], settings: IngestSettings) -> dict[str, Provider]:
    """The provider of every configured source, configured like the intake's."""
    return {sid: get_provider(source.provider, settings) for sid, source in sources.items()}


def _headers(raw: str | None) -> dict[str, str]:
    if not raw:
        return {}
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(parsed, dict):
        return {}
    return {str(k).lower(): str(v) for k, v in parsed.items()}


def renormalize(
    row: tuple[Any, ...],
    provider: Provider | None,
    settings: IngestSettings,
    now: datetime,
) -> Verdict:
    """Replay one stored delivery row (see `_SELECT`) with `provider`; writes nothing."""
    seq, source, delivery_id, topic, received_at, raw_headers, stored, codec, previous = row
    verdict = {
        "delivery_seq": int(seq),
        "source": source,
        "delivery_id": delivery_id,
        "topic": topic,
        "received_at": received_at,
        "previous_reason": previous,
    }
    if provider is None:
        return Verdict(**verdict, reason=previous, configured=False)
    if previous is not None and previous.startswith(UNVERIFIED):
        return Verdict(**verdict, reason=previous)
    body = unpack(stored, codec)
    if body is None:
        return Verdict(**verdict, reason=f"{BODY_NOT_KEPT}, so the delivery cannot be replayed")
    headers = _headers(raw_headers)
    try:
        payload: Any = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return Verdict(**verdict, reason=f"{INVALID_JSON}: {exc}"[:300])
    verdict["topic"] = provider.delivery_info(body, headers, payload).topic[:128]
    try:
        events = provider.normalize(verdict["topic"], payload, headers)
    except UnusableDelivery as exc:
        return Verdict(**verdict, reason=str(exc)[:300])
    except (ValueError, TypeError, KeyError, AttributeError, ArithmeticError) as exc:
        return Verdict(**verdict, reason=f"could not normalize: {type(exc).__name__}: {exc}"[:300])
    future = future_event_reason(events, now, settings.future_tolerance)
    if future is not None:
        return Verdict(**verdict, reason=future[:300])
    kept: bytes | None = None
    if settings.store_raw_bodies:
        kept = redacted_body(payload) if settings.redact_personal_data else body
    return Verdict(**verdict, reason=None, events=events, body=kept)


_SELECT = (
    "SELECT delivery_seq, source, delivery_id, topic, received_at, headers, body, body_codec, "
    "reason "
    f"FROM {DELIVERIES} WHERE {{where}} AND delivery_seq > ? ORDER BY delivery_seq LIMIT ?"
)


def replay_chunk(
    con: duckdb.DuckDBPyConnection,
    providers: Mapping[str, Provider],
    settings: IngestSettings,
    where: QuarantineFilter,
    *,
    now: datetime,
    append_events: AppendEvents,
    after_seq: int = 0,
    limit: int = CHUNK,
    dry_run: bool = False,
    with_total: bool = False,
) -> ReplayReport:
    """Replay up to `limit` matching quarantined deliveries after `after_seq`, one transaction.

    `append_events` is `Writer.append_events` of the writer that owns `con` (inside the service,
    call this from a writer job; outside, from a writer that is not started).
    """
    clause, params = where.where()
    rows = con.execute(_SELECT.format(where=clause), [*params, after_seq, limit]).fetchall()
    verdicts = [renormalize(row, providers.get(row[1]), settings, now) for row in rows]
    report = ReplayReport(dry_run=dry_run, examined=len(verdicts))
    if with_total:
        report.total = count_quarantined(con, where, after_seq)
    if len(rows) == limit:
        report.next_after = int(rows[-1][0])
    moved: list[Verdict] = []
    if dry_run:
        moved = [v for v in verdicts if v.passes]
    elif verdicts:
        moved = _apply(con, verdicts, append_events)
    moved_seqs = {v.delivery_seq for v in moved}
    for verdict in verdicts:
        if verdict.delivery_seq in moved_seqs:
            report.moved += 1
            report.events += len(verdict.events)
            if not dry_run:
                by_source = report.moved_by_source
                by_source[verdict.source] = by_source.get(verdict.source, 0) + 1
        elif not verdict.configured:
            report.skipped += 1
        elif verdict.passes:
            continue  # moved meanwhile by another replay: nothing to count
        else:
            report.stayed += 1
            if verdict.reason != verdict.previous_reason:
                report.reasons_changed += 1
            if len(report.still_quarantined) < LISTED_MAX:
                report.still_quarantined.append(verdict.listed())
    return report


def _apply(
    con: duckdb.DuckDBPyConnection, verdicts: list[Verdict], append_events: AppendEvents
) -> list[Verdict]:
    """Write the verdicts in one transaction; return those that moved out of quarantine."""
    moved: list[Verdict] = []
    con.execute("BEGIN")
    try:
        for verdict in verdicts:
            if not verdict.configured:
                continue
            if verdict.passes:
                updated = con.execute(
                    f"UPDATE {DELIVERIES} SET status = 'accepted', reason = NULL, "
                    "event_count = ?, topic = ?, body = ?, body_codec = ? "
                    "WHERE source = ? AND delivery_id = ? AND status = 'quarantined' "
                    "RETURNING delivery_seq",
                    [
                        len(verdict.events),
                        verdict.topic,
                        *pack(verdict.body),
                        verdict.source,
                        verdict.delivery_id,
                    ],
                ).fetchall()
                if updated:
                    append_events(
                        con,
                        verdict.delivery_seq,
                        verdict.source,
                        verdict.received_at,
                        verdict.events,
                        REPLAY,
                    )
                    moved.append(verdict)
            elif verdict.reason != verdict.previous_reason:
                con.execute(
                    f"UPDATE {DELIVERIES} SET reason = ? "
                    "WHERE source = ? AND delivery_id = ? AND status = 'quarantined'",
                    [verdict.reason, verdict.source, verdict.delivery_id],
                )
        con.execute("COMMIT")
    except BaseException:
        try:
            con.execute("ROLLBACK")
        except duckdb.Error:
            pass
        raise
    return moved


# ----------------------------------------------------------------------------- inside the service


class ReplayRequest(BaseModel):
    """The body of `POST /api/v1/ingest/replay`."""

    model_config = ConfigDict(extra="forbid")

    source: str | None = Field(default=None, description="Only this source's deliveries.")
    since: datetime | None = Field(
        default=None, description="Only deliveries received at or after this time (UTC)."
    )
    reason: str | None = Field(
        default=None, max_length=300, description="Only reasons containing this text (any case)."
    )
    dry_run: bool = Field(default=False, description="Report what would happen; change nothing.")
    after: int = Field(
        default=0,
        ge=0,
        le=2**63 - 1,
        description="Continue after this delivery seq (`next_after` of a chunk).",
    )
    limit: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description="Examine at most this many deliveries, then answer with `next_after`; "
        "omitted: all of them.",
    )

    @field_validator("since")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    def quarantine_filter(self) -> QuarantineFilter:
        return QuarantineFilter(self.source, self.since, self.reason)


async def replay_on_writer(
    writer: Writer,
    providers: Mapping[str, Provider],
    settings: IngestSettings,
    clock: Callable[[], datetime],
    request: ReplayRequest,
    *,
    chunk_timeout: float = 60.0,
) -> ReplayReport:
    """Replay inside the running service: one writer job per chunk, waiting for each."""
    where = request.quarantine_filter()
    report = ReplayReport(dry_run=request.dry_run)
    after = request.after
    left = request.limit
    while True:
        size = CHUNK if left is None else min(CHUNK, left)

        def job(con: duckdb.DuckDBPyConnection, after: int = after, size: int = size) -> Any:
            return replay_chunk(
                con,
                providers,
                settings,
                where,
                now=clock(),
                append_events=writer.append_events,
                after_seq=after,
                limit=size,
                dry_run=request.dry_run,
                with_total=after == request.after,
            )

        future = writer.submit_job(job)
        chunk: ReplayReport = await asyncio.wait_for(asyncio.wrap_future(future), chunk_timeout)
        report.add(chunk)
        if left is not None:
            left -= chunk.examined
        if chunk.next_after is None or (left is not None and left <= 0):
            break
        after = chunk.next_after
    log.info(
        "replay: %d examined, %d moved out of quarantine, %d stay",
        report.examined,
        report.moved,
        report.stayed,
        extra={"outcome": "replay", "dry_run": request.dry_run},
    )
    return report
