"""Benchmark: fold a batch of 1,000 new events into a large history vs a full recompute.

For each history size it builds a live database directly with DuckDB SQL (carts, checkouts,
orders and refunds in a realistic mix), folds it once, then measures in the same run:
- the incremental fold of 1,000 new events (new carts, checkouts, orders and refunds, with the
  carts' own updates), and of 1,000 events of which ~300 are later versions of orders and
  checkouts folded in earlier batches (their state rows are replaced, as with orders/updated),
  as the service folds them (state kept in memory and written every few seconds: the median,
  and the mean with every state write included) and, as a baseline, with the state tables
  written by every fold,
- the full recompute of every aggregate from the stored events,
and prints both with their ratio. With `--service-rss` it then starts `shoppulse serve` on that
database, sends a few hundred signed deliveries, waits until the service is idle (its first
publish of the whole history done) and prints the service's resident memory. Not part of
`make test`.

    .venv/bin/python bench/metrics.py --sizes 1000000 10000000
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

BENCH = Path(__file__).resolve().parent
# Python puts bench/ first on sys.path, where this file would shadow the `metrics` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
if str(BENCH.parent) not in sys.path:
    sys.path.insert(0, str(BENCH.parent))

import duckdb  # noqa: E402
import httpx  # noqa: E402

from bench._load import ShopifyOrders  # noqa: E402
from bench.ingest import SECRET, SOURCE, shoppulse_server  # noqa: E402
from ingest.providers import get_provider  # noqa: E402
from metrics.engine import MetricsEngine  # noqa: E402
from metrics.recompute import FUNNEL_SQL, SALES_SQL  # noqa: E402
from shoppulse.database import open_database  # noqa: E402
from shoppulse.settings import Settings  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=UTC)

# One group of ids makes: cart create + update, checkout create, an order for every third group,
# a refund for every thirtieth: about 2.87 events per group.
#: How often the service writes the state it keeps in memory (its default setting).
SERVICE_STATE_WRITE_SECONDS = Settings.model_fields["metrics_state_write_seconds"].default

_GROUP_EVENTS = """
WITH g AS (SELECT i, TIMESTAMPTZ '2026-01-01 00:00:00+00' + to_milliseconds(i * $spacing) AS t
           FROM range($first, $last) r(i)),
rows AS (
    SELECT i, 0 AS part, 'cart' AS kind, 'create' AS action, 'cart' || i AS entity_id,
           t AS created_at, t AS updated_at, 'cart' || i AS cart_token,
           NULL AS checkout_token, NULL AS order_id,
           NULL AS currency, NULL::DECIMAL(18,4) AS gross, NULL::DECIMAL(18,4) AS disc,
           NULL::DECIMAL(18,4) AS refund, t AS received_at FROM g
    UNION ALL SELECT i, 1, 'cart', 'update', 'cart' || i, t, t + INTERVAL 2 MINUTE, 'cart' || i,
           NULL, NULL, NULL, NULL, NULL, NULL, t + INTERVAL 2 MINUTE FROM g
    UNION ALL SELECT i, 2, 'checkout', 'create', 'co' || i, t + INTERVAL 3 MINUTE,
           t + INTERVAL 3 MINUTE, 'cart' || i, 'co' || i, NULL, 'USD', NULL, NULL, NULL,
           t + INTERVAL 3 MINUTE FROM g WHERE i % 2 = 0
    UNION ALL SELECT i, 3, 'order', 'create', 'o' || i, t + INTERVAL 5 MINUTE,
           t + INTERVAL 5 MINUTE, 'cart' || i, 'co' || i, 'o' || i,
           CASE WHEN i % 7 = 0 THEN 'EUR' ELSE 'USD' END, (10 + i % 90)::DECIMAL(18,4),
           (i % 5)::DECIMAL(18,4), NULL, t + INTERVAL 5 MINUTE FROM g WHERE i % 3 = 0
    UNION ALL SELECT i, 4, 'refund', 'refund', 'r' || i, t + INTERVAL 1 DAY,
           t + INTERVAL 1 DAY, NULL, NULL, 'o' || i, NULL, NULL, NULL, 5::DECIMAL(18,4),
           t + INTERVAL 1 DAY FROM g WHERE i % 30 = 0
)
INSERT INTO events
SELECT $seq0 + row_number() OVER (ORDER BY i, part), $seq0 + row_number() OVER (ORDER BY i, part),
       'shop' || (i % 3), received_at, kind, action, entity_id, created_at, updated_at, cart_token,
       checkout_token, order_id, currency, gross, disc, refund, false, false, false, false, false,
       NULL, 'webhook'
FROM rows
"""


# Later versions of entities folded earlier, as stores send them (Shopify orders/updated and
# orders/paid, checkouts/update): the order of every third group and the checkout of every
# second group of [first, last), each 30 minutes after its first version, same amounts.
_UPDATE_EVENTS = """
WITH g AS (SELECT i, TIMESTAMPTZ '2026-01-01 00:00:00+00' + to_milliseconds(i * $spacing) AS t
           FROM range($first, $last) r(i)),
rows AS (
    SELECT i, 0 AS part, 'checkout' AS kind, 'update' AS action, 'co' || i AS entity_id,
           t + INTERVAL 3 MINUTE AS created_at, t + INTERVAL 33 MINUTE AS updated_at,
           'cart' || i AS cart_token, 'co' || i AS checkout_token, NULL AS order_id,
           'USD' AS currency, NULL::DECIMAL(18,4) AS gross, NULL::DECIMAL(18,4) AS disc,
           NULL::DECIMAL(18,4) AS refund, t + INTERVAL 33 MINUTE AS received_at
    FROM g WHERE i % 2 = 0
    UNION ALL SELECT i, 1, 'order', 'update', 'o' || i, t + INTERVAL 5 MINUTE,
           t + INTERVAL 35 MINUTE, 'cart' || i, 'co' || i, 'o' || i,
           CASE WHEN i % 7 = 0 THEN 'EUR' ELSE 'USD' END, (10 + i % 90)::DECIMAL(18,4),
           (i % 5)::DECIMAL(18,4), NULL, t + INTERVAL 35 MINUTE FROM g WHERE i % 3 = 0
)
INSERT INTO events
SELECT $seq0 + row_number() OVER (ORDER BY i, part), $seq0 + row_number() OVER (ORDER BY i, part),
       'shop' || (i % 3), received_at, kind, action, entity_id, created_at, updated_at, cart_token,
       checkout_token, order_id, currency, gross, disc, refund, false, false, false, false, false,
       NULL, 'webhook'
FROM rows
"""


def _add_updates(con: duckdb.DuckDBPyConnection, first: int, last: int, spacing_ms: int) -> None:
    row = con.execute("SELECT coalesce(max(event_seq), 0) FROM events").fetchall()[0]
    con.execute(
        _UPDATE_EVENTS,
        {"first": first, "last": last, "spacing": spacing_ms, "seq0": int(row[0])},
    )


def _add_groups(con: duckdb.DuckDBPyConnection, first: int, last: int, spacing_ms: int) -> int:
    row = con.execute("SELECT coalesce(max(event_seq), 0) FROM events").fetchall()[0]
    con.execute(
        _GROUP_EVENTS,
        {"first": first, "last": last, "spacing": spacing_ms, "seq0": int(row[0])},
    )
    return int(con.execute("SELECT count(*) FROM events").fetchall()[0][0])


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _status_kib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return float(line.split()[1])
    return float("nan")


def service_rss(path: Path, deliveries: int = 500) -> tuple[float, float]:
    """(current, peak) RSS in MiB of `shoppulse serve` on `path` once idle after `deliveries`."""
    server = shoppulse_server(path.parent, "warning", db=path)
    server.start(timeout=600)  # a large history takes a while to open
    try:
        assert server.process is not None
        pid = server.process.pid
        orders = ShopifyOrders("127.0.0.1", server.port, SOURCE, SECRET, prefix="rss")
        shopify = get_provider("shopify")
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=30.0) as client:
            for i in range(deliveries):
                body = orders.body(i)
                headers = shopify.sign(
                    body, SECRET, topic="orders/create", delivery_id=f"rss-{i}", timestamp=0
                )
                client.post(f"/webhooks/{SOURCE}", content=body, headers=headers)
            deadline = time.monotonic() + 600
            before = server.cpu()
            while True:  # idle: under 5 % of a core for 2 s (first publish done)
                time.sleep(2.0)
                now = server.cpu()
                if now - before < 0.1 or time.monotonic() > deadline:
                    break
                before = now
            client.get("/api/v1/metrics")
        return _status_kib(pid, "VmRSS") / 1024, _status_kib(pid, "VmHWM") / 1024
    finally:
        server.stop()


def write_history(con: duckdb.DuckDBPyConnection, size: int) -> tuple[int, int, int]:
    """About `size` events over a month into the empty live database of `con`; return the
    events written, the groups and their spacing in milliseconds."""
    groups = int(size / 2.87)
    spacing = max(1, int(30 * 86400 * 1000 / groups))  # a month of history
    print(f"\n== {size:,} events: building history ({groups:,} groups) ...", flush=True)
    started = time.perf_counter()
    total = 0
    step = 500_000
    for first in range(0, groups, step):
        total = _add_groups(con, first, min(groups, first + step), spacing)
    print(f"   {total:,} events written in {time.perf_counter() - started:.1f} s", flush=True)
    return total, groups, spacing


def run(size: int, workdir: Path, repeats: int, rss: bool = False) -> dict[str, float]:
    path = workdir / f"history-{size}.duckdb"
    con = open_database(path)
    total, groups, spacing = write_history(con, size)
    engine = MetricsEngine(con, batch_max=250_000)
    now = T0 + timedelta(days=32)
    started = time.perf_counter()
    engine.fold_all(now)
    print(f"   first fold of the whole history: {time.perf_counter() - started:.1f} s", flush=True)
    engine.demote()  # the service does this every minute: unchanged history goes cold
    moved = engine.demote()
    print(f"   {moved:,} unchanged state rows moved to the cold tables", flush=True)
    con.execute("CHECKPOINT")

    next_group = groups

    def new_events() -> None:
        # 1,000 new events: ~349 new groups at the end of the history (new carts, checkouts,
        # orders, refunds) — the steady state of a live store.
        nonlocal next_group
        _add_groups(con, next_group, next_group + 349, spacing)
        next_group += 349

    def updated_events() -> None:
        # 1,000 events of which ~300 are later versions of orders and checkouts folded in
        # earlier batches (their state rows are replaced): 245 new groups (~703 events) +
        # updates of 356 groups from the batches before (~297 events).
        nonlocal next_group
        _add_groups(con, next_group, next_group + 245, spacing)
        _add_updates(con, next_group - 356, next_group, spacing)
        next_group += 245

    def folds(add: Callable[[], None]) -> tuple[list[float], float]:
        """Fold `repeats` batches; return each fold's time and the time of writing the state
        left in memory at the end (so that the folds' mean plus this covers every write)."""
        times = []
        for _ in range(repeats):
            add()
            started = time.perf_counter()
            report = engine.fold(now)
            times.append(time.perf_counter() - started)
            assert report.events > 900, report
        started = time.perf_counter()
        engine.write_state()
        return times, time.perf_counter() - started

    # The same batches folded two ways: the state tables written with every fold (a baseline),
    # then as the service does it (state kept in memory, written every few seconds).
    engine.state_write_seconds = 0.0
    every_fold_times, _ = folds(new_events)
    engine.state_write_seconds = SERVICE_STATE_WRITE_SECONDS
    fold_times, final_write = folds(new_events)
    update_times, update_final_write = folds(updated_events)

    recompute_times = []
    for _ in range(max(1, repeats // 5)):
        started = time.perf_counter()
        for sql in (SALES_SQL, FUNNEL_SQL):
            params = {
                "upto": 1 << 62,
                "now": now,
                "cart_timeout": timedelta(minutes=60),
                "checkout_timeout": timedelta(minutes=10),
            }
            used = {k: v for k, v in params.items() if f"${k}" in sql}
            con.execute(f"SELECT count(*) FROM ({sql})", used).fetchall()
        recompute_times.append(time.perf_counter() - started)
    con.close()
    if rss:
        current, peak = service_rss(path)
        print(
            f"   service on this database: RSS {current:,.0f} MiB once idle "
            f"(peak {peak:,.0f} MiB, first publish of the history included)",
            flush=True,
        )
    fold = statistics.median(fold_times)
    recompute = statistics.median(recompute_times)
    every_fold = statistics.median(every_fold_times)
    result = {
        "events": float(total),
        "fold_ms": fold * 1000,
        "fold_mean_ms": (sum(fold_times) + final_write) / repeats * 1000,
        "every_fold_ms": every_fold * 1000,
        "update_fold_ms": statistics.median(update_times) * 1000,
        "update_mean_ms": (sum(update_times) + update_final_write) / repeats * 1000,
        "fold_p90_ms": sorted(fold_times)[int(len(fold_times) * 0.9)] * 1000,
        "recompute_s": recompute,
        "ratio": recompute / fold,
        "rss_mib": _rss_mib(),
    }
    print(
        f"   fold 1,000 events: median {result['fold_ms']:.1f} ms (p90 "
        f"{result['fold_p90_ms']:.1f} ms), mean with every state write "
        f"{result['fold_mean_ms']:.1f} ms; writing the state with every fold: median "
        f"{every_fold * 1000:.1f} ms ({every_fold / fold:.2f}x)",
        flush=True,
    )
    print(
        f"   with ~300 updates of earlier entities: median {result['update_fold_ms']:.1f} ms, "
        f"mean with every state write {result['update_mean_ms']:.1f} ms; full recompute "
        f"{recompute:.2f} s; recompute / fold = {result['ratio']:.0f}x; peak RSS "
        f"{result['rss_mib']:.0f} MiB",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: temp)")
    parser.add_argument(
        "--service-rss",
        action="store_true",
        help="also start the service on each history and print its memory",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        results = [run(size, Path(tmp), args.repeats, args.service_rss) for size in args.sizes]
    print(
        "\n(fold: median; mean: every state write included; every fold: state tables written "
        "with each fold)"
    )
    print(
        "size        fold 1k (ms)  mean (ms)  every fold (ms)  with updates (ms)  "
        "mean (ms)  recompute (s)  ratio"
    )
    for size, r in zip(args.sizes, results, strict=True):
        print(
            f"{size:>10,}  {r['fold_ms']:>12.1f}  {r['fold_mean_ms']:>9.1f}  "
            f"{r['every_fold_ms']:>15.1f}  {r['update_fold_ms']:>17.1f}  "
            f"{r['update_mean_ms']:>9.1f}  {r['recompute_s']:>13.2f}  {r['ratio']:>5.0f}x"
        )
    if len(results) > 1:
        growth = results[-1]["fold_ms"] / results[0]["fold_ms"]
        print(f"fold time growth {args.sizes[0]:,} -> {args.sizes[-1]:,}: {growth:.2f}x")
    print(f"cpus: {os.cpu_count()}")


if __name__ == "__main__":
    main()
