"""The publisher itself: one cycle reads what changed in the live file and writes Parquet parts
and the catalog (see the package docstring)."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from ingest.storage import schema as ingest_tables
from metrics.history import changes_sql
from metrics.schema import FOLDS
from shoppulse.publish.aggregates import aggregates_changed, publish_aggregates
from shoppulse.publish.catalog import Snapshot, catalog_path, files_location, write_catalog
from shoppulse.publish.compaction import COMPACT_FANOUT, compact
from shoppulse.publish.datasets import (
    DELIVERIES,
    DELIVERY_OVERRIDES,
    EVENTS,
    INGEST_COUNTS,
    METRIC_CHANGES,
    Dataset,
)
from shoppulse.publish.entity_states import EntityStates
from shoppulse.publish.heads import Heads, Positions, live_tables, read_heads
from shoppulse.publish.manifest import STATE_FILE, Manifest, TrackedDelivery
from shoppulse.publish.parts import SCRATCH_DIR, CycleFiles

# `Heads` is part of a cycle's report, so it is importable from here as well.
__all__ = ["Heads", "PublishReport", "Publisher"]


@dataclass
class PublishReport:
    changed: bool
    generation: int
    seconds: float
    compaction_seconds: float = 0.0
    files_written: int = 0
    files_retired: int = 0
    files_deleted: int = 0
    rows_written: int = 0
    heads: Heads | None = None


class Publisher:
    """Publishes the live database at `db_path` through `con` (a connection to it)."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        db_path: Path,
        *,
        grace_seconds: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.live = con.cursor()
        self.live.execute("SET TimeZone = 'UTC'")
        self.catalog = catalog_path(db_path)
        # Absolute and free of symlinks: the catalog's views name files by this path, so any
        # client opens them from any working directory, whatever form `db_path` has.
        self.root = Path(files_location(self.catalog))
        self.grace_seconds = grace_seconds
        self.clock = clock
        self.fanout = COMPACT_FANOUT
        self.root.mkdir(parents=True, exist_ok=True)
        self.manifest = Manifest(self.root / STATE_FILE)
        self._lock = threading.Lock()
        self._states = EntityStates(self.live, self.manifest, self.root)
        #: The live file's tables and views, read at the start of each cycle.
        self._present: set[str] = set()
        self._cleanup_orphans()
        # The data folder was moved or copied (or the catalog predates absolute paths): the
        # next cycle writes the catalog, pointing its views at the files where they are now.
        self._catalog_moved = int(self.manifest.meta("generation")) > 0 and self.manifest.meta(
            "location", ""
        ) != str(self.root)

    # ------------------------------------------------------------------ bookkeeping

    def files(self, dataset: str) -> list[str]:
        """The absolute paths of the published files of `dataset`."""
        return [str(self.root / path) for path in self.manifest.files(dataset)]

    def _cleanup_orphans(self) -> None:
        """Remove what a crashed cycle left: files that no manifest row names."""
        shutil.rmtree(self.root / SCRATCH_DIR, ignore_errors=True)
        known = self.manifest.known_paths()
        for path in self.root.rglob("*.parquet"):
            if str(path.relative_to(self.root)) not in known:
                path.unlink(missing_ok=True)

    # ------------------------------------------------------------------ the cycle

    def publish(self) -> PublishReport:
        """One publish cycle; returns what it did. Safe to call from any thread."""
        with self._lock:
            started = time.perf_counter()
            cycle = CycleFiles(self.root, int(self.manifest.meta("generation")) + 1)
            first = cycle.generation == 1
            live = self.live
            self.manifest.begin()
            try:
                live.execute("BEGIN TRANSACTION")
                try:
                    self._present = live_tables(live)
                    since = self._published()
                    heads = read_heads(live, self._present, since)
                    changed = self._publish_snapshot(cycle, since, heads)
                finally:
                    live.execute("ROLLBACK")  # read only: nothing to keep
                compacted = 0.0
                if cycle.added:
                    mark = time.perf_counter()
                    for dataset, seq in (
                        (EVENTS, "event_seq"),
                        (DELIVERIES, "delivery_seq"),
                        (METRIC_CHANGES, "fold_seq"),
                    ):
                        compact(self.manifest, cycle, dataset, seq, self.fanout)
                    compacted = time.perf_counter() - mark
                # A cycle that wrote nothing (the engine only advanced its timers) moves the
                # watermarks on but keeps the catalog.
                changed = changed and bool(cycle.added or cycle.retired or first)
                if changed or heads.positions != since:
                    self._apply(cycle, heads, new_generation=changed)
                self.manifest.commit()
            except BaseException:
                self.manifest.rollback()
                cycle.discard()
                raise
            if changed or self._catalog_moved:
                self.write_catalog()
                self._catalog_moved = False
            deleted = self._delete_expired()
            return PublishReport(
                changed=changed,
                generation=cycle.generation if changed else cycle.generation - 1,
                seconds=time.perf_counter() - started,
                compaction_seconds=compacted,
                files_written=len(cycle.added),
                files_retired=len(cycle.retired),
                files_deleted=deleted,
                rows_written=cycle.rows,
                heads=heads,
            )

    def write_catalog(self) -> None:
        """(Re)write the catalog from the manifest."""
        datasets = self.manifest.datasets()
        snapshot = Snapshot(
            files={name: self.files(name) for name in datasets},
            published_at=datetime.fromisoformat(self.manifest.meta("published_at", _EPOCH)),
            events_through=int(self.manifest.meta("event_seq")),
            deliveries_through=int(self.manifest.meta("delivery_seq")),
            fold_seq=int(self.manifest.meta("fold_seq")),
            metrics_as_of=_time_or_none(self.manifest.meta("evaluated_at", "")),
            watermark=_time_or_none(self.manifest.meta("watermark", "")),
            location=str(self.root),
        )
        write_catalog(self.catalog, snapshot)
        self.manifest.set_meta("location", self.root)

    def _publish_snapshot(self, cycle: CycleFiles, since: Positions, heads: Heads) -> bool:
        last_event, last_delivery, last_fold = since.event_seq, since.delivery_seq, since.fold_seq
        # The first cycle always writes a catalog.
        changed = int(self.manifest.meta("generation")) == 0
        if heads.event_seq > last_event:
            changed = True
            self._append(
                cycle, EVENTS, ingest_tables.EVENTS, "event_seq", last_event, heads.event_seq
            )
        if self._recheck_quarantine(cycle, last_delivery):
            changed = True
        if heads.delivery_seq > last_delivery:
            changed = True
            self._append(
                cycle,
                DELIVERIES,
                ingest_tables.DELIVERIES,
                "delivery_seq",
                last_delivery,
                heads.delivery_seq,
            )
            self.manifest.track(
                self.live.execute(
                    "SELECT delivery_seq, status, reason, event_count "
                    f"FROM {ingest_tables.DELIVERIES} "
                    "WHERE delivery_seq > ? AND delivery_seq <= ? AND status = 'quarantined'",
                    [last_delivery, heads.delivery_seq],
                ).fetchall(),
            )
        if self._states.publish(cycle, self._present, last_fold, heads.fold_seq):
            changed = True
        if heads.fold_seq > last_fold:
            changed = True
            publish_aggregates(
                self.live, self.manifest, cycle, self._present, last_fold, heads.fold_seq
            )
            if FOLDS in self._present and aggregates_changed(
                self.live, self._present, last_fold, heads.fold_seq
            ):
                # the history of the figures, appended by fold (metric_history)
                changes = f"({changes_sql()}) AS changes"
                self._append(cycle, METRIC_CHANGES, changes, "fold_seq", last_fold, heads.fold_seq)
        if heads.counts != since.counts and ingest_tables.INGEST_COUNTS in self._present:
            changed = True
            self._replace_whole(
                cycle, INGEST_COUNTS, f"SELECT {{cols}} FROM {ingest_tables.INGEST_COUNTS}"
            )
        return changed

    def _published(self) -> Positions:
        """How far the last cycle published, as its manifest recorded."""
        return Positions(
            int(self.manifest.meta("event_seq")),
            int(self.manifest.meta("delivery_seq")),
            int(self.manifest.meta("fold_seq")),
            self.manifest.meta("counts", ""),
        )

    def _apply(self, cycle: CycleFiles, heads: Heads, *, new_generation: bool) -> None:
        self.manifest.record(cycle.added, cycle.retired, self.clock())
        if new_generation:
            self.manifest.set_meta("generation", cycle.generation)
            self.manifest.set_meta("published_at", datetime.now(UTC).isoformat())
            self.manifest.set_meta("evaluated_at", _iso(heads.evaluated_at))
            self.manifest.set_meta("watermark", _iso(heads.watermark))
        self.manifest.set_meta("event_seq", heads.event_seq)
        self.manifest.set_meta("delivery_seq", heads.delivery_seq)
        self.manifest.set_meta("fold_seq", heads.fold_seq)
        self.manifest.set_meta("counts", heads.counts)

    # ------------------------------------------------------------------ writing files

    def _append(
        self, cycle: CycleFiles, dataset: Dataset, table: str, seq: str, lo: int, hi: int
    ) -> None:
        cols = ", ".join(c.expression + f" AS {c.name}" for c in dataset.columns)
        select = (
            f"SELECT {cols} FROM {table} WHERE {seq} > {int(lo)} AND {seq} <= {int(hi)} "
            f"ORDER BY {seq}"
        )
        cycle.append_part(self.live, dataset, select, lo + 1, hi)

    def _replace_whole(self, cycle: CycleFiles, dataset: Dataset, select: str) -> None:
        cols = dataset.select_list()
        cycle.whole_file(self.live, dataset, select.format(cols=cols))
        cycle.retire(self.manifest.paths(dataset.name))

    # ------------------------------------------------------------------ quarantine overrides

    def _recheck_quarantine(self, cycle: CycleFiles, last_delivery: int) -> bool:
        """Did a published quarantined delivery change (a replay)? Then rewrite the overrides."""
        tracked = self.manifest.quarantined(last_delivery)
        if not tracked or ingest_tables.DELIVERIES not in self._present:
            return False
        seqs = ", ".join(str(int(d.delivery_seq)) for d in tracked)
        current = [
            TrackedDelivery(*r)
            for r in self.live.execute(
                "SELECT delivery_seq, status, reason, event_count "
                f"FROM {ingest_tables.DELIVERIES} "
                f"WHERE delivery_seq BETWEEN {int(tracked[0].delivery_seq)} "
                f"AND {int(tracked[-1].delivery_seq)} AND delivery_seq IN ({seqs})"
            ).fetchall()
        ]
        known = {int(d.delivery_seq): d for d in tracked}
        moved = [d for d in current if d != known[int(d.delivery_seq)]]  # status, reason, count
        if not moved:
            return False
        self.manifest.override(moved)
        overrides = self.manifest.overrides()
        frame = pa.table(
            {
                "delivery_seq": pa.array([d.delivery_seq for d in overrides], pa.int64()),
                "status": pa.array([d.status for d in overrides], pa.string()),
                "reason": pa.array([d.reason for d in overrides], pa.string()),
                "event_count": pa.array([d.event_count for d in overrides], pa.int32()),
            }
        )
        self.live.register("_pub_overrides", frame)
        try:
            self._replace_whole(cycle, DELIVERY_OVERRIDES, "SELECT {cols} FROM _pub_overrides")
        finally:
            self.live.unregister("_pub_overrides")
        return True

    # ------------------------------------------------------------------ expiry

    def _delete_expired(self) -> int:
        cutoff = self.clock() - self.grace_seconds
        expired = self.manifest.expired(cutoff)
        for relative in expired:
            path = self.root / relative
            path.unlink(missing_ok=True)
            with suppress(OSError):
                path.parent.rmdir()  # an emptied day directory
        self.manifest.forget_retired(expired)
        return len(expired)

    def close(self) -> None:
        with suppress(Exception):
            self.live.close()
        with suppress(Exception):
            self.manifest.close()


_EPOCH = "1970-01-01T00:00:00+00:00"


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment else ""


def _time_or_none(text: str) -> datetime | None:
    return datetime.fromisoformat(text) if text else None
