"""Publish benchmark: the cost of one publish cycle at two history sizes, and freshness.

    .venv/bin/python bench/publish.py                          # 1M and 10M stored events
    .venv/bin/python bench/publish.py --sizes 1000000,5000000 --freshness 40

1. Cycle cost. For each size N, a live database is built directly with DuckDB SQL (`range()`):
   N events and N deliveries over 365 days (2 events per order), the orders' state rows and
   the per-minute sales rows, as the metrics engine would have left them. One full publish
   writes the history; then, `--cycles` times, a batch of `--batch` new events (new orders of
   today, plus one late update of an order 200 days old) is added with its state and
   aggregate rows, and one publish cycle is timed. The cost should not depend on N except
   through the day the late update rewrites (a day holds N/730 orders): the report prints the
   median cycle at each size and their ratio.
2. Freshness. A real `shoppulse serve` (default settings: publish every 2 s) takes signed
   deliveries one at a time; a reader polls the published catalog as an analyst would. The time
   from each 2xx to the delivery being visible in the `deliveries` view: p50, p95, max.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._ports import free_port
from ingest.providers import get_provider
from metrics.schema import CURSOR, FOLDS, ORDER_STATE
from shoppulse.database import open_database
from shoppulse.publish.catalog import catalog_path
from shoppulse.publish.publisher import Publisher

DAY_US = 86_400_000_000
START = datetime(2025, 1, 1, tzinfo=UTC)


def _table(con: duckdb.DuckDBPyConnection, name: str, fallback: str) -> str:
    """The engine's physical table for `name` (its layout may keep state in hot/cold tables)."""
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    for candidate in (f"{name}_cold", name, fallback):
        if candidate in tables:
            return candidate
    raise RuntimeError(f"no table for {name}")


#: The order state columns the benchmark fills (the rest of `ORDER_STATE` stays NULL).
_ORDER_COLUMNS = ", ".join(c.name for c in ORDER_STATE.columns if c.name not in ("d_at", "d_seq"))


def _fold_done(con: duckdb.DuckDBPyConnection, event_seq: int, fold: int) -> None:
    """Move the cursor as a fold of the events up to `event_seq` whose state is written would."""
    con.execute(
        f"UPDATE {CURSOR} SET event_seq = ?, fold_seq = ?, state_event_seq = ?, "
        "state_fold_seq = ?, evaluated_at = now(), state_evaluated_at = now()",
        [event_seq, fold, event_seq, fold],
    )
    con.execute(f"INSERT INTO {FOLDS} VALUES (?, now(), NULL, ?)", [fold, event_seq])


def build(db_path: Path, events: int) -> tuple[duckdb.DuckDBPyConnection, dict[str, str]]:
    con = open_database(db_path)
    orders = events // 2
    span = 365 * DAY_US
    ts = (
        f"(TIMESTAMPTZ '{START.isoformat()}' "
        f"+ to_microseconds((i::HUGEINT * {span} // {events})::BIGINT))"
    )
    con.execute(
        f"""INSERT INTO deliveries SELECT i + 1, 'acme', 'd-' || i, 'orders/create', {ts},
        NULL, NULL, 'accepted', NULL, 1, NULL FROM range({events}) t(i)"""
    )
    con.execute(
        f"""INSERT INTO events SELECT i + 1, i + 1, 'acme', {ts}, 'order', 'create',
        'o-' || (i // 2), {ts}, {ts}, NULL, NULL, 'o-' || (i // 2), 'USD', 100.00, 5.00, NULL,
        false, false, false, false, false, NULL, 'webhook'
        FROM range({events}) t(i)"""
    )
    tables = {
        "orders": _table(con, "metrics_orders", "metrics_orders_hot"),
        "sales": _table(con, "metrics_sales_deltas", "metrics_sales_minute"),
    }
    created = (
        f"(TIMESTAMPTZ '{START.isoformat()}' "
        f"+ to_microseconds((i::HUGEINT * 2 * {span} // {events})::BIGINT))"
    )
    con.execute(
        f"""INSERT INTO {tables["orders"]} ({_ORDER_COLUMNS}) SELECT 'acme', 'o-' || i, true,
        {created}, 2 * i + 2, {created}, 'USD', 100.00, 5.00, false, false, false, NULL, NULL, 1
        FROM range({orders}) t(i)"""
    )
    con.execute(
        f"""INSERT INTO {tables["sales"]} SELECT 'acme', 'USD', m, count(*), sum(100.00),
        sum(5.00), 0, 1, 'delivery' FROM (SELECT date_trunc('minute', {created}) AS m
        FROM range({orders}) t(i)) GROUP BY m"""
    )
    _fold_done(con, events, 1)
    con.execute("CHECKPOINT")
    return con, tables


def add_batch(
    con: duckdb.DuckDBPyConnection, tables: dict[str, str], batch: int, fold: int
) -> None:
    """`batch` new events of new orders today, one late update of an old order, fold `fold`."""
    top = int(con.execute("SELECT max(event_seq) FROM events").fetchall()[0][0])
    now = "TIMESTAMPTZ '2026-01-01 12:00:00+00'"
    con.execute("BEGIN")
    con.execute(
        f"""INSERT INTO deliveries SELECT {top} + i + 1, 'acme', 'n-' || ({top} + i),
        'orders/create', {now}, NULL, NULL, 'accepted', NULL, 1, NULL FROM range({batch}) t(i)"""
    )
    con.execute(
        f"""INSERT INTO events SELECT {top} + i + 1, {top} + i + 1, 'acme', {now}, 'order',
        'create', 'n-' || ({top} + i), {now}, {now}, NULL, NULL, 'n-' || ({top} + i), 'USD',
        100.00, 5.00, NULL, false, false, false, false, false, NULL, 'webhook'
        FROM range({batch}) t(i)"""
    )
    con.execute(
        f"""INSERT INTO {tables["orders"]} ({_ORDER_COLUMNS}) SELECT 'acme', 'n-' || ({top} + i),
        true, {now}, {top} + i + 1, {now} + INTERVAL (i % 60) MINUTE, 'USD', 100.00, 5.00, false,
        false, false, NULL, NULL, {fold} FROM range({batch}) t(i)"""
    )
    late = f"o-{fold * 7}"  # an order of the first days: its day's file is rewritten
    con.execute(
        f"UPDATE {tables['orders']} SET gross_sales = 120.00, changed_seq = {fold} WHERE id = ?",
        [late],
    )
    con.execute(
        f"""INSERT INTO {tables["sales"]} SELECT 'acme', 'USD', {now} + INTERVAL (i) MINUTE,
        1, 100.00, 5.00, 0, {fold}, 'delivery' FROM range(60) t(i)"""
    )
    _fold_done(con, top + batch, fold)
    con.execute("COMMIT")


def cycle_cost(events: int, batch: int, cycles: int, workdir: Path) -> dict[str, Any]:
    db_path = workdir / f"n{events}" / "shoppulse.duckdb"
    started = time.perf_counter()
    con, tables = build(db_path, events)
    built = time.perf_counter() - started
    publisher = Publisher(con, db_path)
    started = time.perf_counter()
    publisher.publish()
    full = time.perf_counter() - started
    timings, compaction, written = [], [], []
    for n in range(cycles):
        add_batch(con, tables, batch, fold=2 + n)
        report = publisher.publish()
        timings.append(report.seconds)
        compaction.append(report.compaction_seconds)
        written.append(report.rows_written)
    files = len(list((db_path.parent / "analytics").rglob("*.parquet")))
    publisher.close()
    con.close()
    return {
        "events": events,
        "build_s": round(built, 1),
        "first_full_publish_s": round(full, 1),
        "cycle_median_s": round(statistics.median(timings), 3),
        "cycle_max_s": round(max(timings), 3),
        "compaction_median_s": round(statistics.median(compaction), 3),
        "rows_written_median": int(statistics.median(written)),
        "published_files": files,
    }


# ----------------------------------------------------------------------------- freshness


def freshness(deliveries: int, workdir: Path) -> dict[str, Any]:
    config = workdir / "fresh" / "sources.toml"
    config.parent.mkdir(parents=True)
    config.write_text('[[sources]]\nid = "acme"\nprovider = "shopify"\nsecrets = ["bench"]\n')
    db_path = workdir / "fresh" / "data" / "shoppulse.duckdb"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPPULSE_")}
    log = (workdir / "fresh" / "service.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-c", "from shoppulse.cli import main; main()", "serve",
         "--config", str(config), "--db", str(db_path), "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    catalog = catalog_path(db_path)
    acked: dict[str, float] = {}
    seen: dict[str, float] = {}
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            if catalog.exists():
                con = duckdb.connect(str(catalog), read_only=True)
                try:
                    rows = con.execute("SELECT delivery_id FROM deliveries").fetchall()
                finally:
                    con.close()
                moment = time.monotonic()
                for (delivery_id,) in rows:
                    seen.setdefault(delivery_id, moment)
            time.sleep(0.05)

    shopify = get_provider("shopify")
    sample = json.loads(
        (
            Path(__file__).parent.parent / "tests/fixtures/webhooks/shopify/orders_create.json"
        ).read_text()
    )
    poller = threading.Thread(target=poll, daemon=True)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("the service did not start")
                time.sleep(0.1)
            poller.start()
            for n in range(deliveries):
                sample.update(id=9_000_000 + n, test=False, cancelled_at=None)
                body = json.dumps(sample).encode()
                delivery_id = f"fresh-{n}"
                headers = shopify.sign(
                    body, "bench", topic="orders/create", delivery_id=delivery_id,
                    timestamp=int(time.time()),
                )  # fmt: skip
                response = client.post("/webhooks/acme", content=body, headers=headers)
                assert response.status_code == 200, response.text
                acked[delivery_id] = time.monotonic()
                time.sleep(0.25)
            deadline = time.monotonic() + 30
            while len(seen.keys() & acked.keys()) < len(acked) and time.monotonic() < deadline:
                time.sleep(0.1)
    finally:
        stop.set()
        process.terminate()
        process.wait(30)
        log.close()
    lags = sorted(seen[d] - acked[d] for d in acked if d in seen)
    return {
        "deliveries": len(acked),
        "visible": len(lags),
        "p50_s": round(lags[len(lags) // 2], 2),
        "p95_s": round(lags[int(len(lags) * 0.95) - 1], 2),
        "max_s": round(lags[-1], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--freshness", type=int, default=40, help="deliveries (0: skip)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="shoppulse-bench-publish-"))
    try:
        results = []
        for size in (int(s) for s in args.sizes.split(",")):
            result = cycle_cost(size, args.batch, args.cycles, workdir)
            print(json.dumps(result), flush=True)
            results.append(result)
            shutil.rmtree(workdir / f"n{size}", ignore_errors=True)
        if len(results) >= 2:
            ratio = results[-1]["cycle_median_s"] / results[0]["cycle_median_s"]
            print(
                f"cycle cost at {results[-1]['events']:,} vs {results[0]['events']:,} events: "
                f"{ratio:.2f}x (flat = 1.0)",
                flush=True,
            )
        if args.freshness:
            print(json.dumps({"freshness": freshness(args.freshness, workdir)}), flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
