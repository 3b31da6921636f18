"""Benchmark: how much a busy Python thread slows DuckDB work running in another thread.

The service runs DuckDB (writer, metrics fold, publisher) on background threads while the event
loop runs Python. DuckDB's Python client takes the GIL back between steps of a running
statement, so a statement slows down when another thread keeps the GIL busy. This prints, in one
run, the time of the same DuckDB work alone and next to a thread that spins in Python, as a
ratio, for a long aggregate and for the writer's kind of statement (a small append + COMMIT).

    .venv/bin/python -P bench/duckdb_gil.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import duckdb


def _timed(work: Callable[[], None], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _beside_busy_python(work: Callable[[], None], repeats: int) -> float:
    """Median time of `work` on a thread while this thread spins in Python."""
    result: list[float] = []
    worker = threading.Thread(target=lambda: result.append(_timed(work, repeats)))
    worker.start()
    spins = 0
    while worker.is_alive():
        spins += 1
    worker.join()
    return result[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=None,
        help="sys.setswitchinterval for the run (default: Python's 0.005 s)",
    )
    args = parser.parse_args()
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)
    with tempfile.TemporaryDirectory() as tmp:
        con = duckdb.connect(str(Path(tmp) / "gil.duckdb"))
        con.execute("SET threads = 1")
        con.execute("CREATE TABLE t (id VARCHAR, body BLOB)")
        body = b"x" * 10_000
        rows = iter(range(10**9))
        cursor = con.cursor()

        def aggregate() -> None:
            cursor.execute("SELECT sum(i * i) FROM range(20000000) r(i)").fetchall()

        def append_commit() -> None:
            cursor.execute("BEGIN")
            appender = cursor.appender("t")
            appender.append_rows([(str(next(rows)), body) for _ in range(64)])
            appender.flush()
            cursor.execute("COMMIT")

        print(
            f"DuckDB {duckdb.__version__}, Python {sys.version.split()[0]}, "
            f"switch interval {sys.getswitchinterval() * 1000:g} ms"
        )
        print(f"{'work':<36}{'alone':>10}{'beside busy Python':>22}{'slowdown':>10}")
        for name, work, repeats in (
            ("aggregate of 20M rows", aggregate, 3),
            ("append 64 rows of 10 KB + COMMIT", append_commit, 30),
        ):
            alone = _timed(work, repeats)
            busy = _beside_busy_python(work, repeats)
            print(f"{name:<36}{alone * 1000:>8.1f} ms{busy * 1000:>19.1f} ms{busy / alone:>9.1f}x")
        con.close()


if __name__ == "__main__":
    main()
