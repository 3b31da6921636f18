"""Delivery counters: loaded from the database at start, kept in memory, exported two ways
(JSON at /api/v1/ingest/stats and Prometheus at /metrics)."""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb
from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client import Counter as PromCounter

from ingest.reconcile.records import DELIVERY_ID_PREFIX
from ingest.storage.schema import DELIVERIES, INGEST_COUNTS

OUTCOMES = ("accepted", "duplicate", "quarantined", "rejected")
#: The one bucket deliveries to unconfigured source ids are counted under.
UNKNOWN_SOURCE = "_unknown"

ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass
class _SourceStats:
    counts: Counter[str] = field(default_factory=Counter)
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    last_delivery_at: datetime | None = None


class IngestStats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sources: defaultdict[str, _SourceStats] = defaultdict(_SourceStats)
        self.started_at = time.time()
        self._sections: dict[str, Callable[[], dict[str, Any]]] = {}
        self.registry = CollectorRegistry()
        self._delivery_counters: dict[tuple[str, str], PromCounter] = {}
        self._deliveries = PromCounter(
            "shoppulse_deliveries",
            "Webhook deliveries by source and outcome.",
            ["source", "outcome"],
            registry=self.registry,
        )
        self.ack_latency = Histogram(
            "shoppulse_ack_latency_seconds",
            "Time from request start to the response of a delivery.",
            buckets=ACK_BUCKETS,
            registry=self.registry,
        )
        self.commit_seconds = Histogram(
            "shoppulse_writer_commit_seconds",
            "Time the writer takes to store one batch of deliveries (one transaction).",
            buckets=ACK_BUCKETS,
            registry=self.registry,
        )
        self.batch_deliveries = Histogram(
            "shoppulse_writer_batch_deliveries",
            "Deliveries stored per writer batch.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "shoppulse_writer_queue_depth",
            "Deliveries waiting for the writer.",
            registry=self.registry,
        )

    def add_section(self, name: str, read: Callable[[], dict[str, Any]]) -> None:
        """Show `read()` under `name` in every snapshot (and on /readyz), e.g. the lag of a
        service that consumes a log."""
        self._sections[name] = read

    def sections(self) -> dict[str, dict[str, Any]]:
        return {name: read() for name, read in self._sections.items()}

    def load(self, con: duckdb.DuckDBPyConnection) -> None:
        """Start from what the database already holds (webhook deliveries: not the records
        reconciliation fetched, which would make a silent webhook look alive)."""
        rows = con.execute(
            f"SELECT source, status, count(*), max(received_at) FROM {DELIVERIES} "
            "WHERE NOT starts_with(delivery_id, ?) GROUP BY source, status",
            [DELIVERY_ID_PREFIX],
        ).fetchall()
        for source, status, count, last in rows:
            outcome = "quarantined" if status == "quarantined" else "accepted"
            stats = self._sources[source]
            stats.counts[outcome] += int(count)
            if last is not None and (
                stats.last_delivery_at is None or last > stats.last_delivery_at
            ):
                stats.last_delivery_at = last
        rows = con.execute(f"SELECT source, outcome, reason, count FROM {INGEST_COUNTS}").fetchall()
        for source, outcome, reason, count in rows:
            stats = self._sources[source]
            stats.counts[outcome] += int(count)
            if outcome == "rejected":
                stats.rejected_by_reason[reason] += int(count)

    def record(self, source: str, outcome: str, reason: str | None = None) -> None:
        with self._lock:
            stats = self._sources[source]
            stats.counts[outcome] += 1
            if outcome == "rejected" and reason:
                stats.rejected_by_reason[reason] += 1
            stats.last_delivery_at = datetime.now(UTC)
        counter = self._delivery_counters.get((source, outcome))
        if counter is None:  # a label lookup costs more than the rest of this method
            counter = self._deliveries.labels(source=source, outcome=outcome)
            self._delivery_counters[(source, outcome)] = counter
        counter.inc()

    def observe_batch(self, deliveries: int, seconds: float) -> None:
        """One writer batch: how many deliveries, how long its transaction took."""
        self.commit_seconds.observe(seconds)
        self.batch_deliveries.observe(deliveries)

    def replayed(self, moved: dict[str, int]) -> None:
        """Deliveries replayed out of quarantine count as accepted from now on (as after a
        restart, which counts the stored statuses)."""
        with self._lock:
            for source, count in moved.items():
                stats = self._sources[source]
                stats.counts["quarantined"] -= count
                stats.counts["accepted"] += count

    def sources(self) -> set[str]:
        """Every source that has sent a delivery ShopPulse stored or counted (now or formerly
        configured; deliveries to unknown sources are counted under one bucket, left out)."""
        with self._lock:
            return {source for source in self._sources if source != UNKNOWN_SOURCE}

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            sources = {
                source: {
                    **{outcome: stats.counts.get(outcome, 0) for outcome in OUTCOMES},
                    "rejected_by_reason": dict(stats.rejected_by_reason),
                    "last_delivery_at": stats.last_delivery_at.isoformat()
                    if stats.last_delivery_at
                    else None,
                }
                for source, stats in sorted(self._sources.items())
            }
            totals = {
                outcome: sum(stats.counts.get(outcome, 0) for stats in self._sources.values())
                for outcome in OUTCOMES
            }
            lasts = [s.last_delivery_at for s in self._sources.values() if s.last_delivery_at]
        return {
            "totals": totals,
            "last_delivery_at": max(lasts).isoformat() if lasts else None,
            "sources": sources,
            **self.sections(),
        }
