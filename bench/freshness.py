"""Benchmark: end-to-end freshness, from a delivery's acknowledgement to its order in
/api/v1/metrics.

Starts `shoppulse serve` on a fresh database, sends signed Shopify orders at a steady rate
(open loop) and meanwhile polls `GET /api/v1/metrics` every `--poll` seconds, noting each
answer's `watermark` (the arrival time of the newest event folded in). Afterwards it reads every
acknowledged delivery's `received_at` from the database: a delivery is visible from the first
answer whose watermark is at or after its arrival. Two figures per delivery:

- from acknowledgement: that answer's time - the time the sender got its 2xx (0 when the
  answer came first), both on this process's clock: "acknowledged → visible";
- from arrival: that answer's time - `received_at`, which also counts the time the delivery
  waited for its acknowledgement (an upper bound of the first).

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


def _visible(arrivals: list[float], answers: list[tuple[float, float]]) -> list[float | None]:
    """For each arrival, the time of the first answer whose watermark reached it (or None)."""
    # The watermark only grows; keep the running maximum to search it.
    times, marks, best = [], [], float("-inf")
    for answered, watermark in answers:
        best = max(best, watermark)
        times.append(answered)
        marks.append(best)
    out: list[float | None] = []
    for arrival in arrivals:
        index = bisect.bisect_left(marks, arrival)
        out.append(times[index] if index < len(times) else None)
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
    acked_at = dict(zip(result.acknowledged, result.acknowledged_at, strict=True))
    rows = con.execute("SELECT delivery_id, epoch_us(received_at) FROM deliveries").fetchall()
    con.close()
    stored = [(us / 1e6, acked_at[key]) for key, us in rows if key in acked_at]
    visible = _visible([arrival for arrival, _ in stored], answers)
    from_arrival = sorted(
        seen - arrival
        for (arrival, _), seen in zip(stored, visible, strict=True)
        if seen is not None
    )
    from_ack = sorted(
        max(0.0, seen - ack)
        for (_, ack), seen in zip(stored, visible, strict=True)
        if seen is not None
    )
    nan = float("nan")
    return {
        "rate": rate,
        "acked_per_s": result.throughput,
        "ack_p99_ms": result.latency_ms(99),
        "fresh_p50": percentile(from_ack, 50) if from_ack else nan,
        "fresh_p95": percentile(from_ack, 95) if from_ack else nan,
        "fresh_max": from_ack[-1] if from_ack else nan,
        "arrival_p95": percentile(from_arrival, 95) if from_arrival else nan,
        "arrival_max": from_arrival[-1] if from_arrival else nan,
        "never": float(len(stored) - len(from_ack)),
        "samples": float(len(from_ack)),
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
            f"{row['ack_p99_ms']:,.0f} ms; acknowledged → visible p50 {row['fresh_p50']:.2f} s, "
            f"p95 {row['fresh_p95']:.2f} s, max {row['fresh_max']:.2f} s; arrival → visible "
            f"p95 {row['arrival_p95']:.2f} s, max {row['arrival_max']:.2f} s "
            f"({row['samples']:,.0f} deliveries, {row['never']:,.0f} never seen)",
            flush=True,
        )
    print(f"target: acknowledged → visible p95 ≤ {TARGET_P95_S:g} s at 1,000 deliveries/s")


if __name__ == "__main__":
    main()
