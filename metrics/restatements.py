"""Restatements: what each bucket was first reported as once it closed, what it is now, and why.

A bucket (an hour or a day, of the source's time zone or the one asked for) closes at its end
plus an optional `settle` delay. Its first reported
value is the sum of the changes of the folds evaluated by then — what `as_of` at the close
answers — and its value now is the sum of every change. The difference is split by the cause each
change row carries (`metrics.causes`), so the causes always add up to the difference exactly. A
first version delivered after the close is a `late_delivery`.

Only additive metrics (counts and money) are restated: a rate's or an average's change is not a
sum of parts. Buckets that have not closed yet are left out; a bucket that closed before the
history began (the upgrade that added it, or the last `recompute --rebuild`) has no first
reported value.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import duckdb

from metrics.causes import DELIVERY
from metrics.definitions import Metric
from metrics.history import history_start
from metrics.query import Window, _bucket, _money
from metrics.schema import FOLDS, FUNNEL_LOG, SALES_LOG

#: How a cause is named in a restatement, where it differs from its name in the change log.
RESTATED_AS = {DELIVERY: "late_delivery"}
RestatedGrain = Literal["hour", "day"]
#: Each sales metric as an expression of the sales change log's columns.
_SALES_VALUES = {
    **{name: name for name in SALES_LOG.value_names},
    "net_sales": "gross_sales - discounts - returns",
}


def restatable(metric: Metric) -> None:
    """Raise ValueError unless `metric` is additive."""
    if metric.kind not in ("count", "money"):
        raise ValueError(
            f"'{metric.name}' is {'an' if metric.kind == 'average' else 'a'} {metric.kind}, not "
            "a sum: restatements are for counts and money (restate its parts instead)"
        )


@dataclass
class _Bucket:
    closed_at: datetime
    first: Decimal = Decimal(0)
    now: Decimal = Decimal(0)
    causes: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))


def restatements(
    con: duckdb.DuckDBPyConnection,
    metric: Metric,
    grain: RestatedGrain,
    window: Window,
    settle: timedelta,
    now: datetime,
    zone: str = "UTC",
) -> list[dict[str, Any]]:
    """One entry per closed bucket of `window` that has data (per currency for money); hours
    and days are those of the IANA time zone `zone`."""
    restatable(metric)
    start, start_params = _bucket(grain, zone)
    end = f"timezone(?, date_trunc('{grain}', timezone(?, minute)) + INTERVAL 1 {grain})"
    if metric.name in _SALES_VALUES:
        table, value = SALES_LOG.table, _SALES_VALUES[metric.name]
        currency = "NULLIF(currency, '')" if metric.kind == "money" else "NULL"
    else:
        table, value, currency = FUNNEL_LOG.table, metric.name, "NULL"
    where, params = window.where()
    if metric.kind == "money":
        where += " AND currency <> ''"  # orders without amounts have no money
    rows = con.execute(
        "SELECT bucket, bucket_end, currency, cause, sum(value) FILTER (WHERE folded_at IS NULL "
        "OR folded_at <= bucket_end + ?::INTERVAL) AS before_close, sum(value) AS total FROM ("
        f"SELECT {start} AS bucket, {end} AS bucket_end, {currency} AS currency, cause, "
        f"f.evaluated_at AS folded_at, {value} AS value "
        f"FROM {table} d LEFT JOIN {FOLDS} f ON f.fold_seq = d.changed_seq WHERE {where}"
        ") GROUP BY ALL ORDER BY bucket, currency NULLS FIRST, cause",
        [settle, *start_params, zone, zone, *params],
    ).fetchall()
    started = history_start(con)
    buckets: dict[tuple[datetime, str | None], _Bucket] = {}
    for bucket, bucket_end, curr, cause, before_close, total in rows:
        if bucket_end + settle > now:
            continue  # not closed yet
        entry = buckets.setdefault((bucket, curr), _Bucket(bucket_end + settle))
        before, after = Decimal(before_close or 0), Decimal(total or 0)
        entry.first += before
        entry.now += after
        if after != before:
            entry.causes[RESTATED_AS.get(cause, cause)] += after - before
    return [
        _entry(metric, bucket, curr, entry.closed_at, started, entry)
        for (bucket, curr), entry in buckets.items()
    ]


def _entry(
    metric: Metric,
    bucket: datetime,
    currency: str | None,
    closed_at: datetime,
    started: datetime | None,
    entry: _Bucket,
) -> dict[str, Any]:
    recorded = started is not None and closed_at >= started
    causes = {cause: v for cause, v in sorted(entry.causes.items()) if v} if recorded else {}
    return {
        "bucket": bucket.isoformat(),
        "currency": currency,
        "closed_at": closed_at.isoformat(),
        "first_reported": _value(metric, entry.first) if recorded else None,
        "now": _value(metric, entry.now),
        "difference": _value(metric, entry.now - entry.first) if recorded else None,
        "causes": {cause: _value(metric, v) for cause, v in causes.items()},
    }


def _value(metric: Metric, value: Decimal) -> int | str | None:
    return int(value) if metric.kind == "count" else _money(value)
