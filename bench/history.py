"""Benchmark: the figures `as_of` a past moment vs the same query without it, over a large history.

It builds a live database directly with DuckDB SQL (the month of carts, checkouts, orders and
refunds of `bench/metrics.py`), folds it in batches dated one after the other, then adds a week of
idle folds to the fold log (the service folds every second even when nothing arrives, and keeps
each of those folds for `metrics_history_per_fold`, 7 days). Then it measures, in the same run and
alternately, the read API's queries as they run in the service (a DuckDB cursor, no HTTP):

- `/api/v1/metrics` over the whole month, and over one day of it,
- `/api/v1/metrics/timeseries?metric=net_sales&grain=day` over the month,

each now, `as_of` the moment of a fold in the middle of the history (it sums about half the
change log), and `as_of` the last fold (the whole log, as the query without it), and prints the
medians with their ratios (target: `as_of` at most 2x the same query without it). Not part of
`make test`.

    .venv/bin/python -P bench/history.py --size 10000000
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
# Python puts bench/ first on sys.path, where bench/metrics.py would shadow the `metrics` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
if str(BENCH.parent) not in sys.path:
    sys.path.insert(0, str(BENCH.parent))

import duckdb  # noqa: E402

from bench.metrics import T0, write_history  # noqa: E402
from metrics.definitions import METRICS  # noqa: E402
from metrics.engine import MetricsEngine  # noqa: E402
from metrics.query import AsOf, Window, timeseries, window_figures  # noqa: E402
from metrics.schema import CURSOR, FOLDS  # noqa: E402
from shoppulse.database import open_database  # noqa: E402

#: Seconds between two idle folds of the padding (the service's metrics_interval_seconds).
IDLE_INTERVAL = 1


def build(path: Path, size: int, idle_days: float) -> tuple[duckdb.DuckDBPyConnection, Any, Any]:
    """The history database; returns the connection and the moments of its middle and last
    folds."""
    con = open_database(path)
    write_history(con, size)
    engine = MetricsEngine(con, batch_max=250_000)
    started, moments = time.perf_counter(), []
    now = T0 + timedelta(days=32)
    while True:  # folds dated one minute apart, as if the history had arrived over time
        report = engine.fold(now)
        moments.append(now)
        if report.events < engine.batch_max:
            break
        now += timedelta(minutes=1)
    print(
        f"   {len(moments)} folds of the history in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    engine.write_state()
    idle = int(idle_days * 86400 / IDLE_INTERVAL)
    con.execute(
        f"INSERT INTO {FOLDS} SELECT c.fold_seq + i, c.evaluated_at + to_seconds(i * ?), "
        f"c.watermark_received_at, c.event_seq FROM {CURSOR} c, range(1, ? + 1) r(i)",
        [IDLE_INTERVAL, idle],
    )
    con.execute(
        f"UPDATE {CURSOR} SET fold_seq = fold_seq + ?, state_fold_seq = state_fold_seq + ?, "
        f"evaluated_at = evaluated_at + to_seconds(? * ?)",
        [idle, idle, idle, IDLE_INTERVAL],
    )
    rows = con.execute(
        "SELECT (SELECT count(*) FROM metrics_sales_deltas), "
        f"(SELECT count(*) FROM metrics_funnel_deltas), (SELECT count(*) FROM {FOLDS})"
    ).fetchall()[0]
    print(
        f"   change log: {rows[0]:,} sales rows, {rows[1]:,} funnel rows; fold log: {rows[2]:,} "
        f"folds ({idle:,} idle ones over {idle_days:g} days)",
        flush=True,
    )
    con.execute("CHECKPOINT")
    last = con.execute(f"SELECT evaluated_at FROM {CURSOR}").fetchall()[0][0]
    return con, moments[len(moments) // 2], last


def measure(
    con: duckdb.DuckDBPyConnection, moments: tuple[Any, Any], repeats: int
) -> list[tuple[str, float, float, float]]:
    end = T0 + timedelta(days=31)
    month = Window(T0, end)
    day = Window(T0 + timedelta(days=10), T0 + timedelta(days=11))
    net_sales = METRICS["net_sales"]
    now = end + timedelta(days=30)
    queries: list[tuple[str, Callable[[AsOf | None], object]]] = [
        ("/metrics, a month", lambda at: window_figures(con, month, now, at)),
        ("/metrics, one day", lambda at: window_figures(con, day, now, at)),
        (
            "/timeseries net_sales by day",
            lambda at: timeseries(con, net_sales, "day", month, as_of=at),
        ),
    ]
    results = []
    for name, query in queries:
        times: list[list[float]] = [[], [], []]
        for _ in range(repeats):
            for kept, moment in zip(times, (None, *moments), strict=True):
                started = time.perf_counter()
                # the fold lookup is part of the answer's cost
                query(None if moment is None else AsOf.at(con, moment))
                kept.append(time.perf_counter() - started)
        live, middle, last = (statistics.median(t) for t in times)
        results.append((name, live, middle, last))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--idle-days", type=float, default=7.0)
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: temp)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        con, middle, last = build(Path(tmp) / "history.duckdb", args.size, args.idle_days)
        cursor = con.cursor()
        cursor.execute("SET TimeZone = 'UTC'")
        print(
            f"   as_of: {middle.isoformat()} (the middle fold), {last.isoformat()} (the last)\n",
            flush=True,
        )
        results = measure(cursor, (middle, last), args.repeats)
        con.close()
    print(
        f"{'query':<32}{'now (ms)':>10}{'as_of middle (ms)':>19}{'ratio':>8}"
        f"{'as_of last (ms)':>17}{'ratio':>8}"
    )
    for name, live, middle_time, last_time in results:
        print(
            f"{name:<32}{live * 1000:>10.1f}{middle_time * 1000:>19.1f}"
            f"{middle_time / live:>7.2f}x{last_time * 1000:>17.1f}{last_time / live:>7.2f}x"
        )
    print(f"(medians of {args.repeats}, alternately; cpus: {os.cpu_count()})")


if __name__ == "__main__":
    main()
