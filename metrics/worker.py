"""Runs the engine inside the service: after every committed ingest batch, and on a timer so
that carts and checkouts become abandoned when their timeout passes without any new event."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

from metrics.engine import FoldReport, MetricsEngine

log = logging.getLogger("shoppulse.metrics")

#: After a fold of d seconds the worker waits at least this many times d before the next one,
#: so that under load folding takes at most 1 / (1 + FOLD_REST_FACTOR) of the time and
#: ingestion keeps the rest (a fold of many events costs little more than a fold of a few).
FOLD_REST_FACTOR = 2.0


class MetricsWorker:
    def __init__(
        self,
        engine: MetricsEngine,
        clock: Callable[[], datetime],
        interval: float = 1.0,
        compact_every: float = 300.0,
        demote_every: float = 60.0,
        min_fold_interval: float = 0.25,
    ) -> None:
        self.min_fold_interval = min_fold_interval
        self.compact_every = compact_every
        self.demote_every = demote_every
        self._last_compaction = time.monotonic()
        self._last_demotion = float("-inf")
        self.engine = engine
        self.clock = clock
        self.interval = interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="shoppulse-metrics", daemon=True)
        self.last_report: FoldReport | None = None
        self.last_error: str | None = None
        self.folded_total = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread and write the state the engine keeps in memory."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        # The next start folds again whatever is not written here, so a stop never waits long.
        if not self._lock.acquire(timeout=timeout):
            log.warning("a metrics fold is still running: state not written at stop")
            return
        try:
            self.engine.write_state()
        except Exception:
            log.exception("could not write the metrics state at stop")
        finally:
            self._lock.release()

    def notify(self) -> None:
        """New events were committed: fold them now."""
        self._wake.set()

    def fold_now(self) -> int:
        """Fold every committed event and advance timers to the clock's now; return the count."""
        with self._lock:
            now = self.clock()
            total = 0
            while True:
                report = self.engine.fold(now)
                total += report.events
                self.last_report = report
                if report.events < self.engine.batch_max:
                    break
            self.folded_total += total
            self.last_error = None
            if time.monotonic() - self._last_demotion >= self.demote_every:
                self._last_demotion = time.monotonic()
                moved = self.engine.demote()
                log.debug("moved %d unchanged state rows to the cold tables", moved)
            if time.monotonic() - self._last_compaction >= self.compact_every:
                self._last_compaction = time.monotonic()
                saved = self.engine.compact(self.clock())
                log.info("compacted the aggregate change log: %d rows merged away", saved)
            return total

    def write_state_now(self) -> int:
        """Write the state the engine keeps in memory now (normally every few seconds)."""
        with self._lock:
            return self.engine.write_state()

    def compact_now(self) -> int:
        """Merge the aggregate change log now (normally done on a timer)."""
        with self._lock:
            return self.engine.compact(self.clock())

    def demote_now(self) -> int:
        """Move unchanged state rows to the cold tables now (normally done on a timer)."""
        with self._lock:
            return self.engine.demote()

    def _run(self) -> None:
        backoff = self.interval
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                started = time.monotonic()
                self.fold_now()
                took = time.monotonic() - started
                backoff = self.interval
                # Let commits accumulate: one fold of many events costs about as much as one
                # fold of a few, so folding after every commit would starve ingestion.
                self._stop.wait(max(self.min_fold_interval, FOLD_REST_FACTOR * took))
            except Exception as exc:  # keep running: the next fold retries from the cursor
                self.last_error = str(exc)[:500]
                log.exception("metrics fold failed; retrying")
                time.sleep(min(backoff, 30.0))
                backoff *= 2
