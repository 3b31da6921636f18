"""Where published rows land: the part files one publish cycle writes, and their names.

- An append-only dataset (`events`, `deliveries`, `metric_changes`) gets one part per cycle,
  named by the range of sequence numbers it holds: `events/s<lo>-<hi>-g<generation>.parquet`
  (a merge of parts ends in `m.parquet`, see `shoppulse.publish.compaction`).
- A dataset replaced whole each time (`ingest_counts`, `delivery_overrides`) gets one file:
  `<dataset>/g<generation>.parquet`.
- A partitioned dataset (entity state, per-minute aggregates) gets one file per UTC day of its
  rows (`day_of`): `<dataset>/day=YYYY-MM-DD/g<generation>-<n>.parquet`, `day=none` for rows
  without a time.

Every file is written under `_tmp/`, flushed, made read-only and renamed to a name no other file
ever had, so a reader of an older catalog never sees a file change under it. Nothing a cycle
writes is published until the manifest records it (`CycleFiles.added`); `discard` removes what a
failed cycle wrote.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from shoppulse.publish.datasets import Dataset, quote
from shoppulse.publish.durable import fsync_dir, fsync_file
from shoppulse.publish.manifest import Manifest, PartFile

#: The part of rows whose day is unknown.
NO_DAY = "none"
#: Where files are written before they are renamed into place (emptied at every start).
SCRATCH_DIR = "_tmp"


def day_of(column: str) -> str:
    """The partition of a row: the UTC day of `column`, or 'none'."""
    return f"coalesce(strftime(timezone('UTC', {column}), '%Y-%m-%d'), '{NO_DAY}')"


def range_name(dataset: str, lo: int, hi: int, generation: int, *, merged: bool = False) -> str:
    """The name of an append-only part holding sequence numbers `lo` to `hi`."""
    suffix = "m" if merged else ""
    return f"{dataset}/s{lo:012d}-{hi:012d}-g{generation:09d}{suffix}.parquet"


def copy_parquet(con: duckdb.DuckDBPyConnection, select: str, target: Path) -> int:
    """Write the rows of `select` to the Parquet file `target`; how many rows it wrote."""
    rows = con.execute(
        f"COPY ({select}) TO {quote(str(target))} (FORMAT parquet, COMPRESSION zstd)"
    ).fetchall()
    return int(rows[0][0]) if rows else 0


@dataclass
class CycleFiles:
    """The files one publish cycle (`generation`) writes below `root`, and those it retires."""

    root: Path
    generation: int
    #: Files renamed into place by this cycle (deleted again if the cycle fails).
    written: list[Path] = field(default_factory=list)
    #: What the manifest is to record as published when the cycle commits.
    added: list[PartFile] = field(default_factory=list)
    #: Published files (relative paths) this cycle replaces.
    retired: list[str] = field(default_factory=list)
    rows: int = 0

    def retire(self, paths: list[str]) -> None:
        """Retire these published files (each once, however often a cycle names it)."""
        known = set(self.retired)
        self.retired += [p for p in dict.fromkeys(paths) if p not in known]

    def scratch(self, name: str) -> Path:
        """An emptied scratch path for `name`, on the same file system as the published files."""
        path = self.root / SCRATCH_DIR / f"g{self.generation:09d}-{name}"
        shutil.rmtree(path, ignore_errors=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def place(self, temporary: Path, relative: str) -> Path:
        """Move a finished file to its final (never reused) name."""
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        fsync_file(temporary)
        os.chmod(temporary, 0o444)
        os.replace(temporary, target)
        self.written.append(target)
        fsync_dir(target.parent)
        return target

    def append_part(
        self, con: duckdb.DuckDBPyConnection, dataset: Dataset, select: str, lo: int, hi: int
    ) -> PartFile:
        """Write `select` (the rows with sequence numbers `lo` to `hi`) as a new part."""
        temporary = self.scratch(dataset.name).with_suffix(".parquet")
        count = copy_parquet(con, select, temporary)
        relative = range_name(dataset.name, lo, hi, self.generation)
        self.place(temporary, relative)
        added = PartFile(dataset.name, "", relative, count, lo, hi)
        self.added.append(added)
        self.rows += count
        return added

    def whole_file(self, con: duckdb.DuckDBPyConnection, dataset: Dataset, select: str) -> PartFile:
        """Write `select` as the one new file of `dataset` (the caller retires the old ones)."""
        temporary = self.scratch(dataset.name).with_suffix(".parquet")
        count = copy_parquet(con, select, temporary)
        relative = f"{dataset.name}/g{self.generation:09d}.parquet"
        self.place(temporary, relative)
        added = PartFile(dataset.name, "", relative, count, None, None)
        self.added.append(added)
        self.rows += count
        return added

    def partitioned(
        self, con: duckdb.DuckDBPyConnection, dataset: Dataset, select: str
    ) -> list[PartFile]:
        """Write `select` (with a `_part` column, see `day_of`) as one new file per part."""
        out = self.scratch(dataset.name)
        rows = con.execute(
            f"COPY ({select}) TO {quote(str(out))} (FORMAT parquet, COMPRESSION zstd, "
            "PARTITION_BY (_part), FILENAME_PATTERN 'data_{i}')"
        ).fetchall()
        self.rows += int(rows[0][0]) if rows else 0
        added: list[PartFile] = []
        if out.exists():
            for directory in sorted(out.iterdir()):
                part = directory.name.split("=", 1)[1]
                for index, written in enumerate(sorted(directory.glob("*.parquet"))):
                    relative = f"{dataset.name}/day={part}/g{self.generation:09d}-{index}.parquet"
                    self.place(written, relative)
                    added.append(PartFile(dataset.name, part, relative, 0, None, None))
            shutil.rmtree(out, ignore_errors=True)
        self.added += added
        return added

    def discard(self) -> None:
        """Delete every file this cycle renamed into place (it failed: none is published)."""
        for path in self.written:
            path.unlink(missing_ok=True)


def replace_parts(
    con: duckdb.DuckDBPyConnection,
    manifest: Manifest,
    cycle: CycleFiles,
    dataset: Dataset,
    select: str,
    parts: set[str],
) -> None:
    """Write `select` (with a `_part` column) as one new file per part; retire the published
    files of every part in `parts`, so parts that come out empty simply disappear."""
    cycle.partitioned(con, dataset, select)
    for part in parts:
        cycle.retire(manifest.paths(dataset.name, part))
