"""The history of the figures: which fold answered at a moment, and how long each fold is kept.

Every fold is dated in `metrics_folds` (its evaluation time, watermark and event cursor), and
every row of the aggregate change logs carries the fold that made it. The figures as reported
at a moment T are the sums of the changes of the folds evaluated at or before T, read with the
freshness of the last of them: exactly what `/api/v1/metrics` answered at T.

Compaction keeps this per fold for a recent period (`History.per_fold`, 7 days by default).
Older folds are merged per hour (up to `History.hourly`, 90 days), then per day: the changes of
one bucket and cause within an hour (or day) become one row, carried by the last fold of that
hour (or day), and only that fold stays in `metrics_folds`. A moment in such a period resolves
to the end of the last whole hour (or day) at or before it, or to the last fold before it when
no fold was evaluated in between. Sums over all folds, and over the folds up to any kept fold,
stay exact (the publisher and the restatements read them that way).

Periods are half-open at the start: an hour `(h - 1 h, h]` holds the folds evaluated after
`h - 1 h` up to `h` included, so that asking as of the hour `h` itself stays exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb

from metrics.schema import CHANGE_LOGS, FOLDS, FUNNEL_LOG, SALES_LOG


@dataclass(frozen=True)
class History:
    """How long the change log keeps each resolution."""

    per_fold: timedelta = timedelta(days=7)
    hourly: timedelta = timedelta(days=90)

    def __post_init__(self) -> None:
        if self.per_fold < timedelta(0) or self.hourly < self.per_fold:
            raise ValueError("history periods must satisfy 0 <= per_fold <= hourly")


@dataclass(frozen=True)
class FoldAt:
    """The fold that answered at a moment: its number, evaluation time, watermark and cursor."""

    fold_seq: int
    evaluated_at: datetime
    watermark: datetime | None
    event_seq: int


def fold_at(con: duckdb.DuckDBPyConnection, moment: datetime) -> FoldAt | None:
    """The last fold evaluated at or before `moment` still in the history (None: none was)."""
    rows = con.execute(
        f"SELECT fold_seq, evaluated_at, watermark_received_at, event_seq FROM {FOLDS} "
        "WHERE evaluated_at <= ? ORDER BY fold_seq DESC LIMIT 1",
        [moment],
    ).fetchall()
    if not rows:
        return None
    fold_seq, evaluated_at, watermark, event_seq = rows[0]
    return FoldAt(int(fold_seq), evaluated_at, watermark, int(event_seq))


def history_start(con: duckdb.DuckDBPyConnection) -> datetime | None:
    """When the oldest fold in the history was evaluated (None: no fold yet)."""
    row = con.execute(f"SELECT min(evaluated_at) FROM {FOLDS}").fetchall()[0]
    start: datetime | None = row[0]
    return start


def record_fold_sql(fold_seq: int, evaluated: str, watermark: str, event_seq: int) -> str:
    """SQL: date a fold (the moments as TIMESTAMPTZ literals)."""
    return (
        f"INSERT INTO {FOLDS} VALUES ({int(fold_seq)}, {evaluated}, {watermark}, {int(event_seq)})"
    )


def _ceil(unit: str) -> str:
    """SQL: the end of the `unit` period `(end - 1 unit, end]` that holds `evaluated_at`."""
    return f"date_trunc('{unit}', evaluated_at - INTERVAL 1 microsecond) + INTERVAL 1 {unit}"


def compact(con: duckdb.DuckDBPyConnection, upto_fold: int, now: datetime, history: History) -> int:
    """In the caller's transaction: merge the changes of folds up to `upto_fold` that are older
        than the per-fold period, per bucket, cause and hour (or day), and forget the folds merged
    into a later one; return the change rows saved."""
    recent, hourly = now - history.per_fold, now - history.hourly
    # Only periods with several folds left have work (a merged period keeps one fold).
    con.execute(
        "CREATE OR REPLACE TEMP TABLE fold_periods AS SELECT fold_seq, kept FROM ("
        "SELECT fold_seq, max(fold_seq) OVER periods AS kept, count(*) OVER periods AS folds "
        f"FROM (SELECT fold_seq, CASE WHEN evaluated_at >= ? THEN {_ceil('hour')} "
        f"ELSE {_ceil('day')} END AS period FROM {FOLDS} "
        f"WHERE fold_seq <= {int(upto_fold)} AND evaluated_at < ?) "
        "WINDOW periods AS (PARTITION BY period)) WHERE folds > 1",
        [hourly, recent],
    )
    saved = 0
    for log in CHANGE_LOGS:
        table, key, values = log.table, log.key, log.value_names
        columns = ", ".join(key)
        sums = ", ".join(f"sum(d.{v}) AS {v}" for v in values)
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE merged_changes AS "
            f"SELECT {', '.join(f'd.{c}' for c in key)}, {sums}, p.kept AS changed_seq, d.cause "
            f"FROM {table} d JOIN fold_periods p ON d.changed_seq = p.fold_seq "
            f"GROUP BY {', '.join(f'd.{c}' for c in key)}, d.cause, p.kept "
            "HAVING count(*) > 1 OR bool_or(d.changed_seq <> p.kept)"
        )
        matches = " AND ".join(f"t.{c} = m.{c}" for c in (*key, "cause"))
        deleted = con.execute(
            f"DELETE FROM {table} t USING fold_periods p, merged_changes m "
            f"WHERE t.changed_seq = p.fold_seq AND p.kept = m.changed_seq AND {matches}"
        ).fetchall()[0][0]
        nonzero = " OR ".join(f"{v} <> 0" for v in values)
        inserted = con.execute(
            f"INSERT INTO {table} SELECT {columns}, {', '.join(values)}, changed_seq, cause "
            f"FROM merged_changes WHERE {nonzero}"
        ).fetchall()[0][0]
        con.execute("DROP TABLE merged_changes")
        saved += int(deleted) - int(inserted)
    con.execute(
        f"DELETE FROM {FOLDS} WHERE fold_seq IN "
        "(SELECT fold_seq FROM fold_periods WHERE fold_seq <> kept)"
    )
    con.execute("DROP TABLE fold_periods")
    return saved


def changes_sql() -> str:
    """SQL: every aggregate change with its fold, the fold's evaluation time and its cause, one
    row per metric that changed (columns fold_seq, folded_at, cause, source, currency, minute,
    metric, value): the live side of the analysts' `metric_history` view."""
    sales = SALES_LOG.value_names
    sales_values = ", ".join(f"CAST({v} AS DECIMAL(38,4)) AS {v}" for v in sales)
    funnel = FUNNEL_LOG.value_names
    funnel_values = ", ".join(f"CAST({v} AS DECIMAL(38,4)) AS {v}" for v in funnel)
    return (
        "SELECT c.changed_seq AS fold_seq, f.evaluated_at AS folded_at, c.cause, c.source, "
        "c.currency, c.minute, c.metric, c.value FROM ("
        "UNPIVOT (SELECT changed_seq, cause, source, NULLIF(currency, '') AS currency, minute, "
        f"{sales_values}, CAST(gross_sales - discounts - returns AS DECIMAL(38,4)) AS net_sales "
        f"FROM {SALES_LOG.table}) ON {', '.join(sales)}, net_sales INTO NAME metric VALUE value "
        "UNION ALL BY NAME "
        "UNPIVOT (SELECT changed_seq, cause, source, CAST(NULL AS VARCHAR) AS currency, minute, "
        f"{funnel_values} FROM {FUNNEL_LOG.table}) ON {', '.join(funnel)} "
        "INTO NAME metric VALUE value"
        f") c LEFT JOIN {FOLDS} f ON f.fold_seq = c.changed_seq WHERE c.value <> 0"
    )
