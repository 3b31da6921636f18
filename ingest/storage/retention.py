"""Raw-body retention: the periodic purge of old raw bodies of accepted deliveries.

Accepted deliveries keep their raw body for `raw_body_retention_days` (0 keeps them forever); then
the purge sets the body to NULL and keeps the rest of the row (ids, topic, times, headers worth
keeping) and its events, so metrics do not change. Quarantined bodies are kept whatever their age:
they are needed to replay the delivery once its mapping is fixed.

The purge runs as a job on the writer thread (between batches, so it never races with an insert),
at start and then every `purge_interval_seconds`, in chunks so that a large backlog does not hold
the writer for long.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

import duckdb

from ingest.storage.schema import DELIVERIES
from ingest.storage.writer import Writer

log = logging.getLogger("shoppulse.retention")

#: Most bodies cleared by one job; the job schedules itself again while more are due.
PURGE_CHUNK = 10_000


def purge_raw_bodies(
    con: duckdb.DuckDBPyConnection, cutoff: datetime, limit: int = PURGE_CHUNK
) -> int:
    """Clear the raw body of up to `limit` accepted deliveries received before `cutoff`."""
    row = con.execute(
        f"UPDATE {DELIVERIES} SET body = NULL WHERE delivery_seq IN ("
        f"SELECT delivery_seq FROM {DELIVERIES} WHERE status = 'accepted' "
        "AND body IS NOT NULL AND received_at < ? ORDER BY delivery_seq LIMIT ?)",
        [cutoff, limit],
    ).fetchone()
    return int(row[0]) if row else 0


class RawBodyPurge:
    """Schedules `purge_raw_bodies` on the writer thread: at start, then every `interval` s."""

    def __init__(
        self,
        writer: Writer,
        clock: Callable[[], datetime],
        *,
        retention_days: int,
        interval: float,
        chunk: int = PURGE_CHUNK,
    ) -> None:
        self.writer = writer
        self.clock = clock
        self.retention_days = retention_days
        self.interval = interval
        self.chunk = chunk
        self.purged_total = 0
        self.runs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="shoppulse-retention", daemon=True)

    def start(self) -> None:
        if self.retention_days > 0:
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def run_soon(self) -> None:
        """Queue one purge on the writer thread."""
        if self.retention_days > 0:
            self.writer.run_job(self._job)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.run_soon()
            self._stop.wait(self.interval)

    def _job(self, con: duckdb.DuckDBPyConnection) -> None:
        cutoff = self.clock() - timedelta(days=self.retention_days)
        cleared = purge_raw_bodies(con, cutoff, self.chunk)
        self.purged_total += cleared
        self.runs += 1
        if cleared:
            log.info(
                "cleared the raw bodies of %d accepted deliveries received before %s",
                cleared,
                cutoff.isoformat(),
            )
        if cleared >= self.chunk and not self._stop.is_set():
            self.writer.run_job(self._job)  # more are due: continue after the next batch
