"""Overload soak: drive the service at about 3x what it sustains, then let the load drop.

    .venv/bin/python bench/overload.py                      # 3x for 20 s, then 0.5x for 10 s
    .venv/bin/python bench/overload.py --factor 3 --duration 20 --max-in-flight 256

The real `shoppulse serve` (tests/e2e/server.py's ServiceProcess, 127.0.0.1) gets signed Shopify
orders/create deliveries from bench/_load.py's load generator:

1. sustainable: a closed loop (N connections back to back) measures what the service acknowledges
   per second;
2. overload: an open loop starts `factor` times that rate on schedule for `duration` seconds
   (latency counts from each request's scheduled start);
3. recovery: an open loop at half the sustainable rate.

While it runs, the service's resident memory (VmRSS of /proc/<pid>/status) is sampled. It
reports the share of 503 answers (load shed with Retry-After), the acknowledged throughput and
latency of each phase, the memory over time against the configured bound, and at the end stops
the service and checks that every acknowledged delivery is in the database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
# Run as a script, Python puts bench/ first on sys.path, where bench/ingest.py would shadow the
# `ingest` package: import from the project root instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
if str(BENCH.parent) not in sys.path:
    sys.path.insert(0, str(BENCH.parent))

import duckdb  # noqa: E402

from bench._load import PhaseResult, ShopifyOrders, install_uvloop, run_closed, run_open  # noqa: E402
from shoppulse.settings import Settings  # noqa: E402
from tests.e2e.server import ServiceProcess  # noqa: E402

SOURCE = "overload"
SECRET = "overload-secret"
MB = 2**20


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


class MemorySampler:
    """Samples a process's VmRSS every `interval` seconds on a thread."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, str, float]] = []
        self.phase = "idle"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = time.perf_counter()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.perf_counter() - self._started, self.phase, rss_mb(self.pid)))
            self._stop.wait(self.interval)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def peak(self, phase: str | None = None) -> float:
        values = [mb for _, p, mb in self.samples if phase is None or p == phase]
        return max(values) if values else float("nan")


def describe(result: PhaseResult) -> dict[str, Any]:
    summary = result.summary()
    answered = sum(result.statuses.values())
    shed = result.statuses.get(503, 0)
    summary["shed_share"] = round(shed / answered, 4) if answered else None
    summary["acked_per_s"] = round(result.total_ok / result.elapsed, 1) if result.elapsed else 0
    return summary


def line(name: str, s: dict[str, Any]) -> str:
    return (
        f"{name:12s} target {s['target_rate'] or '-':>8} /s"
        f"  acknowledged {s['throughput_per_s']:8.1f} /s"
        f"  503 share {100 * (s['shed_share'] or 0):5.1f} %  p50 {s['p50_ms']:8.1f} ms"
        f"  p99 {s['p99_ms']:8.1f} ms  errors {s['errors']}  connections {s['max_connections']}"
    )


async def phases(
    service: ServiceProcess, sampler: MemorySampler, args: argparse.Namespace
) -> dict[str, PhaseResult]:
    host, port = "127.0.0.1", service.port
    results: dict[str, PhaseResult] = {}

    def orders(prefix: str, first: int) -> ShopifyOrders:
        return ShopifyOrders(host, port, SOURCE, SECRET, prefix=prefix, first_order_id=first)

    sampler.phase = "sustainable"
    results["sustainable"] = await run_closed(
        host, port, orders("sus", 1), concurrency=args.concurrency,
        duration=args.measure, name="sustainable",
    )  # fmt: skip
    sustainable = max(results["sustainable"].throughput, 1.0)
    sampler.phase = "overload"
    results["overload"] = await run_open(
        host, port, orders("ovl", 10**9), rate=sustainable * args.factor,
        duration=args.duration, max_connections=args.max_connections, name="overload",
    )  # fmt: skip
    sampler.phase = "recovery"
    results["recovery"] = await run_open(
        host, port, orders("rec", 2 * 10**9), rate=sustainable * args.recovery_factor,
        duration=args.recovery, max_connections=args.max_connections, name="recovery",
    )  # fmt: skip
    sampler.phase = "idle"
    return results


def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="shoppulse-overload-"))
    workdir.mkdir(parents=True, exist_ok=True)
    env = {"SHOPPULSE_MAX_IN_FLIGHT": str(args.max_in_flight)}
    service = ServiceProcess.for_sources(workdir, {SOURCE: ("shopify", SECRET)}, env=env)
    loop = install_uvloop()
    settings = Settings(max_in_flight=args.max_in_flight)
    bound_mb = settings.max_in_flight * settings.max_body_bytes / MB
    service.start(timeout=120)
    assert service.process is not None
    sampler = MemorySampler(service.process.pid)
    baseline = rss_mb(service.process.pid)
    sampler.start()
    try:
        results = asyncio.run(phases(service, sampler, args))
    finally:
        sampler.stop()
    service.stop(timeout=120)
    acknowledged = [key for result in results.values() for key in result.acknowledged]
    with duckdb.connect(str(service.db), read_only=True) as con:
        stored = {row[0] for row in con.execute("SELECT delivery_id FROM deliveries").fetchall()}
    lost = [key for key in acknowledged if key not in stored]
    summaries = {name: describe(result) for name, result in results.items()}
    sustainable = results["sustainable"].throughput
    recovered = summaries["recovery"]["statuses"].get(200, 0) == results["recovery"].total_sent
    report = {
        "loop": loop,
        "max_in_flight": args.max_in_flight,
        "max_body_bytes": settings.max_body_bytes,
        "phases": summaries,
        "rss_baseline_mb": round(baseline, 1),
        "rss_peak_mb": round(sampler.peak(), 1),
        "rss_peak_by_phase_mb": {p: round(sampler.peak(p), 1) for p in results},
        "rss_samples": [(round(t, 2), p, round(mb, 1)) for t, p, mb in sampler.samples],
        "body_bound_mb": round(bound_mb, 1),
        "acknowledged": len(acknowledged),
        "lost": len(lost),
        "recovered": recovered,
    }
    print(f"ShopPulse overload run ({loop}); max_in_flight {args.max_in_flight}")
    for name, summary in summaries.items():
        print(line(name, summary))
    print(
        f"sustainable: {sustainable:.0f} acknowledged/s; overload target "
        f"{sustainable * args.factor:.0f}/s ({args.factor:g}x)"
    )
    print("memory (VmRSS, MB) over time, one sample per second:")
    for t, phase, mb in sampler.samples[:: max(1, round(1 / sampler.interval))]:
        print(f"  {t:6.1f} s  {phase:12s} {mb:7.1f}")
    print(
        f"RSS baseline {baseline:.0f} MB, peak {sampler.peak():.0f} MB (overload "
        f"{sampler.peak('overload'):.0f} MB); bound on request bodies held at once: "
        f"max_in_flight x max_body_bytes = {bound_mb:,.0f} MB"
    )
    print(
        f"durability: {len(acknowledged):,} acknowledged, {len(lost)} missing from the database; "
        f"recovery phase all acknowledged: {recovered}"
    )
    report["ok"] = not lost and recovered and summaries["overload"]["statuses"].get(503, 0) > 0
    print(f"RESULT: {'OK' if report['ok'] else 'FAILED'}")
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--factor", type=float, default=3.0, help="overload x sustainable (3)")
    parser.add_argument("--duration", type=float, default=20.0, help="overload seconds (20)")
    parser.add_argument("--recovery", type=float, default=10.0, help="recovery seconds (10)")
    parser.add_argument(
        "--recovery-factor", type=float, default=0.5, help="recovery x sustainable (0.5)"
    )
    parser.add_argument("--measure", type=float, default=5.0, help="sustainable phase seconds")
    parser.add_argument("--concurrency", type=int, default=32, help="sustainable connections")
    parser.add_argument("--max-connections", type=int, default=2048, help="open-loop cap")
    parser.add_argument("--max-in-flight", type=int, default=Settings().max_in_flight)
    parser.add_argument("--workdir", help="where the database goes (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--json", type=Path, help="write the report as JSON to this file")
    args = parser.parse_args()
    report = run(args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    sys.exit(0 if report["ok"] else 1)


if __name__ == "__main__":
    main()
