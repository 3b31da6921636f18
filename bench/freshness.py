"""Benchmark: end-to-end freshness, from a delivery's arrival to its order in /api/v1/metrics.

Starts `shoppulse serve` on a fresh database, sends signed Shopify orders at a steady rate
(open loop) and meanwhile polls `GET /api/v1/metrics` every `--poll` seconds, noting each
answer's `watermark` (the arrival time of the newest event folded in). Afterwards it reads every
acknowledged delivery's `received_at` from the database: a delivery is visible from the first
answer whose watermark is at or after its arrival. Freshness = that answer's time - arrival, so
it also counts the acknowledgement time (an upper bound of "acknowledged → visible").

    .venv/bin/python bench/freshness.py --rates 200,400,1000 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
# Python puts bench/ first on sys.path, where bench/ingest.py would shadow the `ingest` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
if str(BENCH.parent) not in sys.path:
    sys.path.insert(0, str(BENCH.parent))

import duckdb  # noqa: E402
import httpx  # noqa: E402

from bench._load import ShopifyOrders, install_uvloop, percentile, run_open  # noqa: E402
from bench.ingest import SECRET, SOURCE, shoppulse_server  # noqa: E402

TARGET_P95_S = 1.0


async def _poll(port: int, every: float, stop: asyncio.Event) -> list[tuple[float, float]]:
    """(answer time, watermark) of each metrics answer, as Unix times."""
    seen: list[tuple[float, float]] = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10.0) as client:
        while not stop.is_set():
            response = await client.get("/api/v1/metrics")
            answered = time.time()
            watermark = response.json().get("watermark")
            if watermark:
                seen.append((answered, datetime.fromisoformat(watermark).timestamp()))
            try:
                await asyncio.wait_for(stop.wait(), every)
            except TimeoutError:
                pass
    return seen


def _freshness(arrivals: list[float], answers: list[tuple[float, float]]) -> list[float]:
    """Seconds from each arrival to the first answer whose watermark reached it."""
    # The watermark only grows; keep the running maximum to search it.
    times, marks, best = [], [], float("-inf")
    for answered, watermark in answers:
        best = max(best, watermark)
        times.append(answered)
        marks.append(best)
    out = []
    for arrival in arrivals:
        index = bisect.bisect_left(marks, arrival)
        if index < len(times):
            out.append(times[index] - arrival)
    return out


async def _run_rate(rate: float, args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    server = shoppulse_server(workdir, "info")
    server.start()
    try:
        orders = ShopifyOrders("127.0.0.1", server.port, SOURCE, SECRET, prefix=f"fresh-{rate:g}")
        stop = asyncio.Event()
        poller = asyncio.create_task(_poll(server.port, args.poll, stop))
        result = await run_open(
            "127.0.0.1", server.port, orders, rate=rate, duration=args.duration, warmup=1.0
        )
        await asyncio.sleep(args.tail)  # let the last folds land
        stop.set()
        answers = await poller
    finally:
        server.stop()
    con = duckdb.connect(str(workdir / "data" / "shoppulse.duckdb"), read_only=True)
    acknowledged = set(result.acknowledged)
    rows = con.execute("SELECT delivery_id, epoch_us(received_at) FROM deliveries").fetchall()
    con.close()
    arrivals = sorted(us / 1e6 for delivery_id, us in rows if delivery_id in acknowledged)
    fresh = sorted(_freshness(arrivals, answers))
    never = len(arrivals) - len(fresh)
    return {
        "rate": rate,
        "acked_per_s": result.throughput,
        "ack_p99_ms": result.latency_ms(99),
        "fresh_p50": percentile(fresh, 50) if fresh else float("nan"),
        "fresh_p95": percentile(fresh, 95) if fresh else float("nan"),
        "fresh_max": fresh[-1] if fresh else float("nan"),
        "never": float(never),
        "samples": float(len(fresh)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="200,400", help="deliveries/s, comma-separated")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per rate")
    parser.add_argument("--poll", type=float, default=0.05, help="seconds between metrics polls")
    parser.add_argument("--tail", type=float, default=3.0, help="seconds polled after sending")
    args = parser.parse_args()
    loop = install_uvloop()
    print(f"freshness benchmark ({loop}), polling /api/v1/metrics every {args.poll:g} s")
    rows = []
    for rate in (float(r) for r in args.rates.split(",")):
        with tempfile.TemporaryDirectory(prefix="shoppulse-fresh-") as tmp:
            row = asyncio.run(_run_rate(rate, args, Path(tmp)))
        rows.append(row)
        print(
            f"  {rate:>6,.0f}/s sent: {row['acked_per_s']:>6,.0f}/s acknowledged, ack p99 "
            f"{row['ack_p99_ms']:,.0f} ms; freshness p50 {row['fresh_p50']:.2f} s, p95 "
            f"{row['fresh_p95']:.2f} s, max {row['fresh_max']:.2f} s "
            f"({row['samples']:,.0f} deliveries, {row['never']:,.0f} never seen)",
            flush=True,
        )
    print(f"target: freshness p95 ≤ {TARGET_P95_S:g} s at 1,000 deliveries/s")


if __name__ == "__main__":
    main()
