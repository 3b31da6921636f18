"""Where `shoppulse serve` spends its time under load: a py-spy profile, summarized by thread.

    .venv/bin/python bench/profile_ingest.py                       # 64 connections, 10 s
    .venv/bin/python bench/profile_ingest.py --concurrency 1 --duration 10 --top 25
    .venv/bin/python bench/profile_ingest.py --rate 500             # a steady 500 deliveries/s

It starts ShopPulse as bench/ingest.py does (a fresh database, one Shopify source), loads it
with the same signed orders, samples it with py-spy for the measured seconds, then prints, per
thread, its CPU per delivery (from /proc) and the functions it spends its samples in (inclusive
share; frames in every sample left out). py-spy counts a thread waiting for the GIL as busy in the
frame that waits: `--gil` keeps only the samples of the thread holding it, which hides the work
DuckDB and zlib do with the GIL released. `--raw FILE` keeps py-spy's output (one line per
stack, for flame graph tools). Not a test: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
if str(BENCH.parent) not in sys.path:
    sys.path.insert(0, str(BENCH.parent))

from bench._load import ShopifyOrders, install_uvloop, run_closed, run_open  # noqa: E402
from bench.ingest import (  # noqa: E402
    SECRET,
    SOURCE,
    console,
    settle,
    shoppulse_server,
    thread_cpu,
)

_FRAME = re.compile(r" \(.*?:\d+\)$")


def summarize(raw: Path, top: int) -> dict[str, list[tuple[str, float]]]:
    """Per thread: the `top` functions by inclusive share of that thread's samples."""
    totals: Counter[str] = Counter()
    inclusive: dict[str, Counter[str]] = {}
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = re.sub(r"^thread \(0x[0-9a-fA-F]+\): ", "", frames[0])
        thread = re.sub(r"^thread \(\d+\): ", "", thread).strip('"')
        totals[thread] += count
        seen = {_FRAME.sub("", frame) for frame in frames[1:]}
        inclusive.setdefault(thread, Counter()).update(dict.fromkeys(seen, count))
    return {
        thread: [(name, n / totals[thread]) for name, n in inclusive[thread].most_common(top)]
        for thread in totals
    }


async def load(port: int, args: argparse.Namespace) -> int:
    orders = ShopifyOrders("127.0.0.1", port, SOURCE, SECRET, prefix="profile")
    if args.rate:
        result = await run_open(
            "127.0.0.1", port, orders, rate=args.rate, duration=args.duration, warmup=0.0
        )
    else:
        result = await run_closed(
            "127.0.0.1",
            port,
            orders,
            concurrency=args.concurrency,
            duration=args.duration,
            warmup=0.0,
        )
    return result.total_sent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--concurrency", type=int, default=64, help="connections (default 64)")
    parser.add_argument("--rate", type=float, default=0.0, help="steady deliveries/s instead")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds sampled")
    parser.add_argument("--top", type=int, default=15, help="functions shown per thread")
    parser.add_argument("--raw", type=Path, help="keep py-spy's raw output in this file")
    parser.add_argument(
        "--gil",
        action="store_true",
        help="count only samples holding the GIL (otherwise waiting for it counts as work)",
    )
    args = parser.parse_args(argv)
    install_uvloop()
    workdir = Path(tempfile.mkdtemp(prefix="shoppulse-profile-"))
    raw = args.raw or workdir / "profile.txt"
    server = shoppulse_server(workdir, "info")
    server.start()
    assert server.process is not None
    pid = server.process.pid
    try:
        orders = ShopifyOrders("127.0.0.1", server.port, SOURCE, SECRET, prefix="warm")
        asyncio.run(run_closed("127.0.0.1", server.port, orders, concurrency=8, duration=2))
        asyncio.run(settle([server]))
        before = server.threads()  # reads the thread names once, with py-spy
        spy = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("py-spy")),
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(int(args.duration)),
                "--rate",
                "200",
                "--threads",
                *(["--gil"] if args.gil else []),
                "--format",
                "raw",
                "--output",
                str(raw),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        sent = asyncio.run(load(server.port, args))
        spy.wait(timeout=args.duration + 60)
        after = thread_cpu(pid, server.thread_names)
    finally:
        server.stop()
    what = f"{args.rate:g}/s" if args.rate else f"{args.concurrency} connections"
    console.print(f"{sent:,} deliveries sent over {args.duration:g} s at {what}", highlight=False)
    cpu = {name: after.get(name, 0.0) - before.get(name, 0.0) for name in after}
    for name, seconds in sorted(cpu.items(), key=lambda item: -item[1]):
        if seconds > 0:
            console.print(f"  {name:24s} {seconds / sent * 1e6:8,.0f} µs per delivery")
    for thread, functions in summarize(raw, args.top).items():
        console.print(f"\n[bold]{thread}[/] (inclusive share of its samples)")
        for function, share in functions:
            if share > 0.99:  # the thread's own entry frames
                continue
            console.print(f"  {share * 100:5.1f} %  {function}", highlight=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
