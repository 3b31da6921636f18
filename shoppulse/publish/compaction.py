"""Compaction of append-only datasets: small parts are merged so the file count stays small.

Each cycle adds one part to `events`, `deliveries` and `metric_changes`. Parts have a size class
(under `COMPACT_BASE_ROWS` rows: class 0; each class `COMPACT_FANOUT` times larger; parts of
`COMPACT_MAX_ROWS` rows and more are final). Whenever the newest `fanout` parts share a class,
they are merged into one part of the next class (tiered compaction), so a dataset of n rows has
O(fanout · log n) files and a row is rewritten O(log n) times.

A merge writes a new part and retires the merged ones within the cycle (`CycleFiles`): nothing
changes for readers until the manifest commits, and merged parts stay on disk for the grace
period, so a catalog written before the merge still reads them.
"""

from __future__ import annotations

import duckdb

from shoppulse.publish.datasets import Dataset, quote
from shoppulse.publish.manifest import Manifest, PartFile
from shoppulse.publish.parts import CycleFiles, copy_parquet, range_name

#: Parts of one size class merged together once this many are in a row.
COMPACT_FANOUT = 8
#: Size class 0 holds parts under this many rows; each class is COMPACT_FANOUT times larger.
COMPACT_BASE_ROWS = 4096
#: Parts with at least this many rows are final (never merged again).
COMPACT_MAX_ROWS = 4_000_000


def size_class(rows: int, fanout: int) -> int:
    """The size class of a part of `rows` rows; -1 for a final part.

    Class 0 is under COMPACT_BASE_ROWS rows and class k (k >= 1) from COMPACT_BASE_ROWS ·
    fanout^(k-1) up to, not including, COMPACT_BASE_ROWS · fanout^k: floor(log_fanout(rows /
    COMPACT_BASE_ROWS)) + 1, clamped at 0. Computed with integers, as a floating-point
    logarithm can land just below a whole number at an exact boundary (log_3(243) < 5)."""
    if rows >= COMPACT_MAX_ROWS:
        return -1  # final
    if fanout < 2:
        raise ValueError(f"compaction fanout must be at least 2, not {fanout}")
    number, bound = 0, COMPACT_BASE_ROWS
    while rows >= bound:
        number += 1
        bound *= fanout
    return number


def tail_run(parts: list[PartFile], fanout: int) -> list[PartFile] | None:
    """The newest `fanout` parts if they share one (non-final) size class."""
    if len(parts) < fanout:
        return None
    tail = parts[-fanout:]
    classes = {size_class(int(p.rows), fanout) for p in tail}
    if len(classes) == 1 and -1 not in classes:
        return list(tail)
    return None


def compact(
    manifest: Manifest,
    cycle: CycleFiles,
    dataset: Dataset,
    seq: str,
    fanout: int = COMPACT_FANOUT,
) -> None:
    """Merge the newest run of `fanout` same-size parts of `dataset` into one (repeatedly).

    The parts are the published ones (`manifest`) and those `cycle` added, ordered by `seq`.
    """
    root = cycle.root
    while True:
        retired = set(cycle.retired)
        parts = [p for p in manifest.parts(dataset.name) if p.path not in retired]
        parts += [a for a in cycle.added if a.dataset == dataset.name and a.path not in retired]
        parts.sort(key=lambda p: int(p.lo or 0))
        run = tail_run(parts, fanout)
        if run is None:
            return
        files = [str(root / p.path) for p in run]
        lo, hi = int(run[0].lo or 0), int(run[-1].hi or 0)
        temporary = cycle.scratch(f"{dataset.name}-merge").with_suffix(".parquet")
        with duckdb.connect(":memory:") as merger:
            count = copy_parquet(
                merger,
                f"SELECT * FROM read_parquet([{', '.join(quote(f) for f in files)}]) "
                f"ORDER BY {seq}",
                temporary,
            )
        relative = range_name(dataset.name, lo, hi, cycle.generation, merged=True)
        cycle.place(temporary, relative)
        merged = {p.path for p in run}
        fresh = [a for a in cycle.added if a.path in merged]
        for item in fresh:  # written this cycle and merged at once: never published
            cycle.added.remove(item)
            (root / item.path).unlink(missing_ok=True)
        cycle.retire([p for p in merged if p not in {a.path for a in fresh}])
        cycle.added.append(PartFile(dataset.name, "", relative, count, lo, hi))
