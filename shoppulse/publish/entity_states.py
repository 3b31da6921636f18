"""Publishing the entity state: `orders`, `refunds`, `carts`, `checkouts`, partitioned by day.

The metrics engine marks every entity row with the fold that last changed it (`changed_seq`).
A cycle reads the rows changed since the last published fold and merges them into their day's
file (the UTC day of `created_at`), which is rewritten; every other day stays untouched. An
entity whose `created_at` moved is dropped from its old day: the manifest's key index (point
lookups) knows each published entity's day.

Some published columns are not in the engine's state (it keeps only what the metrics need):
orders' names and lines and checkouts' values come from the stored event of the entity's version
(`event_columns`), refund reasons and cart values from raw delivery bodies (`bodies`). They are
read for new versions only; an unchanged version keeps what was published, because its body may
have been purged since.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from ingest.storage import schema as ingest_tables
from metrics import schema as metrics_tables
from shoppulse.publish.bodies import BodyColumns
from shoppulse.publish.datasets import CARTS, CHECKOUTS, ORDERS, REFUNDS, Dataset
from shoppulse.publish.event_columns import EventColumns
from shoppulse.publish.manifest import Manifest
from shoppulse.publish.parts import CycleFiles, day_of, replace_parts

log = logging.getLogger("shoppulse.publish")


@dataclass(frozen=True)
class _State:
    """An entity-state dataset and where it comes from in the live database."""

    dataset: Dataset
    table: str
    visible: str  # which live rows are entities (not placeholders)
    enrich: str | None = None


_STATES = (
    _State(ORDERS, metrics_tables.ORDERS, "has_version", "order"),
    _State(REFUNDS, metrics_tables.REFUNDS, "true", "refund"),
    _State(CARTS, metrics_tables.CARTS, "seen", "cart"),
    _State(CHECKOUTS, metrics_tables.CHECKOUTS, "seen", "checkout"),
)
#: Entity kinds whose extra columns come from the stored events, not from raw bodies.
_FROM_EVENTS = frozenset({"order", "checkout"})


class EntityStates:
    """Publishes the entity-state datasets of the live file (read through `live`) into the
    files below `root` that `manifest` records.

    One per publisher: it remembers which datasets' published files have been checked to have
    this version's columns.
    """

    def __init__(self, live: duckdb.DuckDBPyConnection, manifest: Manifest, root: Path) -> None:
        self.live = live
        self.manifest = manifest
        self.root = root
        self._body_columns = BodyColumns(live)
        self._event_columns = EventColumns(live)
        self._columns_checked: set[str] = set()

    def publish(self, cycle: CycleFiles, present: set[str], last_fold: int, fold: int) -> bool:
        """Merge the entities changed in folds (last_fold, fold] into `cycle`, for the state
        tables among the live file's `present` tables.

        A dataset whose published files have other columns than this version writes (an upgrade
        added some) is published again whole, once, from the live state, even when no fold
        moved; returns whether one was.
        """
        rebuilt = [s for s in _STATES if s.table in present and not self._same_columns(s)]
        for spec in rebuilt:
            log.info("publishing %s again whole: its columns changed", spec.dataset.name)
            self._publish_state(cycle, present, spec, 0, fold, rebuild=True)
        if fold > last_fold:
            for spec in _STATES:
                if spec.table in present and spec not in rebuilt:
                    self._publish_state(cycle, present, spec, last_fold, fold)
        return bool(rebuilt)

    def _same_columns(self, spec: _State) -> bool:
        """Do the dataset's published files have the columns this version writes? (Checked
        once per publisher: files written since have them.)"""
        name = spec.dataset.name
        if name in self._columns_checked:
            return True
        found = self.manifest.any_file(name)
        same = found is None or pq.read_schema(self.root / found).names == [
            c.name for c in spec.dataset.columns
        ]
        if same:
            self._columns_checked.add(name)
        return same

    def _old_files(self, dataset: Dataset, parts: set[str]) -> list[str]:
        files: list[str] = []
        for part in sorted(parts):
            files += [str(self.root / path) for path in self.manifest.paths(dataset.name, part)]
        return files

    def _publish_state(
        self,
        cycle: CycleFiles,
        present: set[str],
        spec: _State,
        last_fold: int,
        fold: int,
        *,
        rebuild: bool = False,
    ) -> None:
        """Merge the entities changed in folds (last_fold, fold] into their days' files; with
        `rebuild`, write every entity anew and retire every published file of the dataset."""
        dataset = spec.dataset
        if rebuild:
            cycle.retire(self.manifest.paths(dataset.name))
            self.manifest.forget_keys(dataset.name)
        cols = dataset.select_list()
        changed = _arrow(
            self.live,
            f"SELECT {cols}, {day_of('created_at')} AS _part FROM {spec.table} "
            f"WHERE changed_seq > ? AND changed_seq <= ? AND {spec.visible}",
            [last_fold, fold],
        )
        if changed.num_rows == 0:
            return
        keys = [
            f"{s}\x1f{i}"
            for s, i in zip(
                changed.column("source").to_pylist(), changed.column("id").to_pylist(), strict=True
            )
        ]
        new_parts = [str(p) for p in changed.column("_part").to_pylist()]
        old_parts = self.manifest.key_parts(dataset.name, keys)
        affected = set(new_parts) | old_parts
        old_files = [] if rebuild else self._old_files(dataset, affected)
        names = ", ".join(c.name for c in dataset.columns)
        live = self.live
        live.register("_pub_changed", changed)
        try:
            if spec.enrich is not None:
                changed = self._enrich(spec, changed, old_files, present)
                live.unregister("_pub_changed")
                live.register("_pub_changed", changed)
            old = (
                f"SELECT {names}, {day_of('created_at')} AS _part FROM "
                f"{dataset.source_sql(old_files)} o WHERE NOT EXISTS (SELECT 1 FROM "
                "_pub_changed c WHERE c.source = o.source AND c.id = o.id) UNION ALL "
                if old_files
                else ""
            )
            replace_parts(
                live,
                self.manifest,
                cycle,
                dataset,
                f"{old}SELECT {names}, _part FROM _pub_changed ORDER BY _part, created_at, "
                "source, id",
                affected,
            )
        finally:
            live.unregister("_pub_changed")
        self.manifest.set_key_parts(dataset.name, zip(keys, new_parts, strict=True))

    def _enrich(
        self, spec: _State, changed: pa.Table, old_files: list[str], present: set[str]
    ) -> pa.Table:
        """Fill the columns taken from raw bodies: kept from the last publish when the entity's
        version is unchanged (its body may have been purged since), else read now."""
        extra = [c for c in spec.dataset.columns if c.live is None]
        extra_names = [c.name for c in extra]
        live = self.live
        known = "(SELECT NULL::VARCHAR AS source, NULL::VARCHAR AS id, NULL::BIGINT AS version_seq"
        known += "".join(f", NULL::{c.type} AS {c.name}" for c in extra) + " WHERE false)"
        if old_files:
            known = (
                f"(SELECT source, id, version_seq, {', '.join(extra_names)} FROM "
                f"{spec.dataset.source_sql(old_files)} o SEMI JOIN _pub_changed c "
                "ON c.source = o.source AND c.id = o.id)"
            )
        reused = "_pub_known"
        live.register(reused, _arrow(live, f"SELECT * FROM {known}"))
        try:
            wanted = [
                int(r[0])
                for r in live.execute(
                    "SELECT DISTINCT c.version_seq FROM _pub_changed c ANTI JOIN "
                    f"{reused} k ON k.source = c.source AND k.id = c.id "
                    "AND k.version_seq = c.version_seq WHERE c.version_seq IS NOT NULL"
                ).fetchall()
            ]
            fresh = "_pub_fresh"
            if spec.enrich in _FROM_EVENTS:
                read = self._event_columns.read(spec.enrich, extra, wanted)
            else:
                read = self._body_columns.read(
                    spec.enrich, extra, wanted, ingest_tables.DELIVERIES in present
                )
            live.register(fresh, read)
            picks = ", ".join(
                f"CASE WHEN k.id IS NOT NULL THEN k.{n} ELSE f.{n} END AS {n}" for n in extra_names
            )
            try:
                table = _arrow(
                    live,
                    f"SELECT c.* EXCLUDE ({', '.join(extra_names)}), {picks} "
                    f"FROM _pub_changed c LEFT JOIN {reused} k ON k.source = c.source "
                    "AND k.id = c.id AND k.version_seq = c.version_seq "
                    f"LEFT JOIN {fresh} f ON f.event_seq = c.version_seq",
                )
            finally:
                live.unregister(fresh)
        finally:
            live.unregister(reused)
        order = [c.name for c in spec.dataset.columns] + ["_part"]
        return table.select(order)


def _arrow(
    con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | None = None
) -> pa.Table:
    return con.sql(sql, params=list(params) if params else None).to_arrow_table()
