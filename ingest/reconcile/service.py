"""Reconciliation inside the running service: on a schedule per source, and on request.

Every source with store API credentials is reconciled every `reconcile_interval_seconds` (0 turns
the schedule off). A run covers the records changed since the start of the source's last
successful run minus `reconcile_overlap_seconds` (so nothing falls between two runs, whatever the
clocks and the API's indexing lag), or the last `reconcile_lookback` when there is none. A
source runs one reconciliation at a time; each run has its own thread, and the API answers while
it runs (`GET /api/v1/reconciliation/runs/{id}` shows its progress).

Finished runs are stored in `reconciliation_runs` (through the writer); the last seven days of
them say how many records each source's webhooks missed. A source is flagged when that reaches
`reconcile_flag_missed`: its webhook subscription is likely gone (Shopify deletes one after 8
failed tries over 4 hours; WooCommerce disables one after 5 failures).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client import Counter as PromCounter

from ingest.intake import Clock
from ingest.reconcile import runs
from ingest.reconcile.compare import Verdict
from ingest.reconcile.fetchers import make_fetcher
from ingest.reconcile.report import CREDENTIALS_REJECTED, FAILED, OK, RUNNING, RunReport
from ingest.reconcile.runner import run_source, store_through
from ingest.settings import IngestSettings
from ingest.sources import Source
from ingest.storage.schema import check_schema
from ingest.storage.writer import Writer

log = logging.getLogger("shoppulse.reconcile")

#: The span the dashboard and `GET /api/v1/reconciliation` sum missed records over.
MISSED_SPAN = timedelta(days=7)
#: Runs kept in memory for `GET /api/v1/reconciliation/runs/{id}` (older ones: from the table).
KEPT_RUNS = 200


class AlreadyRunning(Exception):
    """A reconciliation of the source is running; wait for it."""


class NoCredentials(Exception):
    """The source has no store API credentials."""


@dataclass
class _SourceState:
    source: Source
    next_due: float = 0.0  # monotonic
    running: RunReport | None = None


class Reconciler:
    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        writer: Writer,
        sources: Mapping[str, Source],
        settings: IngestSettings,
        clock: Clock,
        registry: CollectorRegistry | None = None,
        *,
        backoff_base: float = 1.0,
    ) -> None:
        # On a cursor closed at once: a result left open on the shared connection keeps a
        # transaction open, and a checkpoint then waits for it forever.
        setup = con.cursor()
        try:
            check_schema(setup, runs.RECONCILIATION_SCHEMA)  # open_database migrates
            self._next_id = runs.next_run_id(setup)
        finally:
            setup.close()
        self.con = con
        self.writer = writer
        self.settings = settings
        self.clock = clock
        self.backoff_base = backoff_base
        self.configured = frozenset(sources)
        self.states = {sid: _SourceState(s) for sid, s in sources.items() if s.has_api_credentials}
        self._lock = threading.Lock()
        self._runs: dict[int, RunReport] = {}
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._scheduler = threading.Thread(
            target=self._schedule, name="shoppulse-reconcile", daemon=True
        )
        registry = registry or CollectorRegistry()
        self._records = PromCounter(
            "shoppulse_reconciliation_records",
            "Records fetched from store APIs by reconciliation, by source and verdict.",
            ["source", "verdict"],
            registry=registry,
        )
        self._missed = Gauge(
            "shoppulse_reconciliation_missed_7d",
            "Records the webhooks missed in the last 7 days (filled by reconciliation).",
            ["source"],
            registry=registry,
        )
        self._flagged = Gauge(
            "shoppulse_reconciliation_flagged",
            "1 when a source's webhooks missed at least reconcile_flag_missed records in 7 days.",
            ["source"],
            registry=registry,
        )
        self._last_ok = Gauge(
            "shoppulse_reconciliation_last_success_timestamp_seconds",
            "When the last successful reconciliation run of a source finished.",
            ["source"],
            registry=registry,
        )
        self._refresh_gauges()

    # ------------------------------------------------------------------ lifecycle

    @property
    def interval(self) -> float:
        return self.settings.reconcile_interval_seconds

    def interval_of(self, state: _SourceState) -> float:
        """The source's own interval, else the setting's (0: not on a schedule)."""
        own = state.source.reconcile_interval_seconds
        return own if own is not None else self.interval

    def start(self) -> None:
        if any(self.interval_of(state) > 0 for state in self.states.values()):
            self._scheduler.start()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        for thread in [self._scheduler, *self._threads]:
            if thread.is_alive():
                thread.join(timeout)

    def _first_due(self) -> None:
        """A source reconciled less than an interval ago (before a restart) waits the rest."""
        reader = self.con.cursor()
        try:
            lasts = runs.last_runs(reader)
        finally:
            reader.close()
        now, wall = time.monotonic(), self.clock()
        for source_id, state in self.states.items():
            last = lasts.get(source_id)
            since = (wall - last.started_at).total_seconds() if last is not None else None
            wait = max(self.interval_of(state) - since, 0.0) if since is not None else 0.0
            state.next_due = now + wait

    def _schedule(self) -> None:
        self._first_due()
        while not self._stop.is_set():
            scheduled = {k: v for k, v in self.states.items() if self.interval_of(v) > 0}
            for source_id, state in scheduled.items():
                if self._stop.is_set():
                    return
                if state.running is None and time.monotonic() >= state.next_due:
                    state.next_due = time.monotonic() + self.interval_of(state)
                    try:
                        self.start_run(source_id, trigger="schedule")
                    except AlreadyRunning:
                        pass
            self._stop.wait(min([5.0, *(self.interval_of(v) for v in scheduled.values())]))

    # ------------------------------------------------------------------ runs

    def window_start(self, source_id: str) -> datetime:
        reader = self.con.cursor()
        try:
            last = runs.last_good_start(reader, source_id)
        finally:
            reader.close()
        if last is None:
            return self.clock() - self.settings.reconcile_lookback
        return last - timedelta(seconds=self.settings.reconcile_overlap_seconds)

    def start_run(
        self,
        source_id: str,
        *,
        since: datetime | None = None,
        dry_run: bool = False,
        trigger: str = "manual",
    ) -> RunReport:
        """Start a run on its own thread; its report fills in as it goes."""
        state = self.states.get(source_id)
        if state is None:
            raise NoCredentials(
                f"source '{source_id}' has no store API credentials (see docs/reconciliation.md)"
            )
        with self._lock:
            if state.running is not None:
                raise AlreadyRunning(
                    f"a reconciliation of '{source_id}' is running (run {state.running.run_id})"
                )
            report = RunReport(
                source_id,
                (since or self.window_start(source_id)).astimezone(UTC),
                self.clock(),
                trigger,
                dry_run,
                self._next_id,
            )
            self._next_id += 1
            state.running = report
            self._runs[report.run_id] = report
            for old in sorted(self._runs)[:-KEPT_RUNS]:
                del self._runs[old]
            self._threads = [t for t in self._threads if t.is_alive()]
            thread = threading.Thread(
                target=self._run,
                args=(state, report),
                name=f"shoppulse-reconcile-{source_id}",
                daemon=True,  # `stop` ends it; a process that exits never waits for the API
            )
            self._threads.append(thread)
        thread.start()
        return report

    def _run(self, state: _SourceState, report: RunReport) -> None:
        reader = self.con.cursor()
        try:
            fetcher = make_fetcher(
                state.source, self.settings, stop=self._stop, backoff_base=self.backoff_base
            )
            try:
                run_source(
                    report,
                    fetcher,
                    reader,
                    store_through(self.writer),
                    self.settings,
                    self.clock,
                )
            finally:
                fetcher.close()
            self._count(report)
            self.writer.submit_job(lambda con: runs.save_run(con, report)).result(timeout=60)
            self._refresh_gauges()
        except Exception as exc:  # the run's report says what failed; the service goes on
            log.exception("reconciliation of %s failed", report.source)
            if report.status == RUNNING:
                report.status, report.message = FAILED, str(exc)[:500]
                report.finished_at = self.clock()
        finally:
            reader.close()
            with self._lock:
                state.running = None

    def _count(self, report: RunReport) -> None:
        if report.dry_run:
            return
        for verdict in Verdict:
            count = report.errors if verdict is Verdict.ERROR else getattr(report, verdict)
            if count:
                self._records.labels(source=report.source, verdict=verdict.value).inc(count)
        if report.status == OK and report.finished_at is not None:
            self._last_ok.labels(source=report.source).set(report.finished_at.timestamp())

    def run(self, run_id: int) -> RunReport | None:
        """A run's report, running or finished (finished once stored and the source is free)."""
        with self._lock:
            report = self._runs.get(run_id)
            busy = any(state.running is report for state in self.states.values())
        if report is not None:
            return replace(report, status=RUNNING) if busy else report
        reader = self.con.cursor()
        try:
            return runs.run_by_id(reader, run_id)
        finally:
            reader.close()

    def wait(self, timeout: float = 60.0) -> None:
        """Wait for the runs started so far (for the command line and tests)."""
        for thread in list(self._threads):
            thread.join(timeout)

    # ------------------------------------------------------------------ status

    def _refresh_gauges(self) -> None:
        for source_id, entry in self.missed().items():
            self._missed.labels(source=source_id).set(entry.filled)
            self._flagged.labels(source=source_id).set(int(self.flagged(entry)))

    def missed(self) -> dict[str, runs.Missed]:
        reader = self.con.cursor()
        try:
            return runs.missed_since(reader, self.clock() - MISSED_SPAN)
        finally:
            reader.close()

    def flagged(self, missed: runs.Missed) -> bool:
        return missed.filled >= self.settings.reconcile_flag_missed

    def status(self) -> dict[str, Any]:
        """What `GET /api/v1/reconciliation` answers."""
        reader = self.con.cursor()
        try:
            recent = runs.recent_runs(reader, limit=20)
            lasts = runs.last_runs(reader)
        finally:
            reader.close()
        missed = self.missed()
        sources: dict[str, Any] = {}
        for source_id, state in sorted(self.states.items()):
            last = lasts.get(source_id)
            entry = missed.get(source_id, runs.Missed())
            sources[source_id] = {
                "provider": state.source.provider,
                "interval_seconds": self.interval_of(state),
                "running": state.running.as_dict() if state.running is not None else None,
                "last_run": last.as_dict() if last is not None else None,
                "credentials_rejected": last is not None and last.status == CREDENTIALS_REJECTED,
                "missed_7d": entry.filled,
                "missed_7d_by_kind": dict(entry.by_kind),
                "fetched_7d": entry.fetched,
                "runs_7d": entry.runs,
                "flagged": self.flagged(entry),
            }
        return {
            "interval_seconds": self.interval,
            "flag_missed": self.settings.reconcile_flag_missed,
            "sources": sources,
            "runs": [r.as_dict() for r in recent],
        }
