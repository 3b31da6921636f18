"""Publishing the per-minute aggregates: `sales_minute` and `funnel_minute`, partitioned by day.

The metrics engine keeps each aggregate as an append-only log of changes (`metrics.schema.
ChangeLog`: one row per touched bucket and fold). The days holding a minute changed by the
folds since the last publish are found in that log (its new rows are a cheap range), and only
those days' files are rewritten, with the sums as of the published fold: the engine writes the
entity state every few seconds, so the log may already hold later folds, and the aggregates must
agree with the published state.
"""

from __future__ import annotations

import duckdb

from metrics.schema import CHANGE_LOGS, FUNNEL_LOG, SALES_LOG, ChangeLog
from shoppulse.publish.datasets import FUNNEL_MINUTE, SALES_MINUTE, Dataset, quote
from shoppulse.publish.manifest import Manifest
from shoppulse.publish.parts import CycleFiles, day_of, replace_parts

#: Each published aggregate and the change log it is summed from.
_AGGREGATES = ((SALES_MINUTE, SALES_LOG), (FUNNEL_MINUTE, FUNNEL_LOG))


def publish_aggregates(
    live: duckdb.DuckDBPyConnection,
    manifest: Manifest,
    cycle: CycleFiles,
    present: set[str],
    last_fold: int,
    fold: int,
) -> None:
    """Rewrite into `cycle` the days of each aggregate that the folds (last_fold, fold] changed,
    for the aggregates whose views are among the live file's `present` tables."""
    for dataset, aggregate in _AGGREGATES:
        if aggregate.view in present:
            _publish_aggregate(live, manifest, cycle, present, dataset, aggregate, last_fold, fold)


def aggregates_changed(
    live: duckdb.DuckDBPyConnection, present: set[str], last_fold: int, fold: int
) -> bool:
    """Whether the folds after `last_fold` up to `fold` changed any aggregate."""
    tables = [c.table for c in CHANGE_LOGS if c.table in present]
    found = [
        live.execute(
            f"SELECT 1 FROM {table} WHERE changed_seq > ? AND changed_seq <= ? LIMIT 1",
            [last_fold, fold],
        ).fetchall()
        for table in tables
    ]
    return any(found)


def _publish_aggregate(
    live: duckdb.DuckDBPyConnection,
    manifest: Manifest,
    cycle: CycleFiles,
    present: set[str],
    dataset: Dataset,
    aggregate: ChangeLog,
    last_fold: int,
    fold: int,
) -> None:
    # Where the engine keeps a log of aggregate changes, read the changed days from it
    # (it is append-only, so the range of new rows is cheap to find).
    changes = aggregate.table if aggregate.table in present else aggregate.view
    days = [
        str(r[0])
        for r in live.execute(
            f"SELECT DISTINCT {day_of('minute')} FROM {changes} "
            "WHERE changed_seq > ? AND changed_seq <= ?",
            [last_fold, fold],
        ).fetchall()
    ]
    if not days:
        return
    cols = dataset.select_list()
    listed = ", ".join(quote(d) for d in days)
    first = min(days)
    # The sums as of the published fold, so that they agree with the published state (the
    # engine writes its state every few seconds; later folds are in the log already).
    sums = f"({aggregate.sums(fold)}) AS sums" if changes == aggregate.table else aggregate.view
    replace_parts(
        live,
        manifest,
        cycle,
        dataset,
        f"SELECT {cols}, {day_of('minute')} AS _part FROM {sums} "
        f"WHERE minute >= {quote(first)}::TIMESTAMPTZ AND {day_of('minute')} IN ({listed}) "
        f"AND {_nonzero(dataset)} "
        "ORDER BY minute",
        set(days),
    )


def _nonzero(dataset: Dataset) -> str:
    """Buckets whose every figure is zero (all contributions undone) are not published."""
    return (
        "("
        + " OR ".join(
            f"{c.name} <> 0" for c in dataset.columns if c.type != "VARCHAR" and c.name != "minute"
        )
        + ")"
    )
