"""Ingest benchmark: ShopPulse's webhook endpoint against a bare FastAPI endpoint, same run.

    .venv/bin/python bench/ingest.py                  # the default run (about 2 minutes)
    .venv/bin/python bench/ingest.py --duration 10 --concurrency 1,8,32,64,128 --rate 1000

Both servers run as subprocesses (uvicorn, 1 worker, 127.0.0.1, a free port) and are loaded in
turn, phase by phase, each phase starting once both are idle. Both get the same load: signed
Shopify orders/create deliveries made from the real sample order, each a distinct order with a
unique delivery id. The load generator (bench/_load.py) runs
in this process, on keep-alive connections with requests serialized in one write.

For each concurrency it prints deliveries/s and ack latency (p50/p99) for both servers and the
ratio ShopPulse/bare, then a steady-rate run (open loop, latency counted from each request's
scheduled start). At the end it stops ShopPulse, opens its database and checks that every
acknowledged delivery is stored with its event.

`--floor` adds a third server, bench/floor_app.py: the least a durable, verified endpoint must do
(verify the signature, parse the JSON, group-commit the raw body to DuckDB, answer) on a bare
ASGI app. Its ratio to the bare endpoint is, in practice, a ceiling for ShopPulse's, which does
all of that and more, on the machine the benchmark runs on.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
# Run as a script, Python puts bench/ first on sys.path, where this file would shadow the
# `ingest` package: import from the project root instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
if str(BENCH.parent) not in sys.path:
    sys.path.insert(0, str(BENCH.parent))

import duckdb  # noqa: E402
import httpx  # noqa: E402
import pyarrow as pa  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bench._load import (  # noqa: E402
    PhaseResult,
    ShopifyOrders,
    install_uvloop,
    run_closed,
    run_open,
)
from bench._ports import free_port  # noqa: E402

SOURCE = "bench"
SECRET = "bench-secret"
#: Targets, stated against the floor measured in the same run (`--floor`).
FLOOR_PEAK_TARGET = 0.85  # ShopPulse's peak deliveries/s at 64 connections / the floor's
FLOOR_CPU_TARGET = 1.3  # ShopPulse's CPU per delivery at 64 connections / the floor's
STEADY_P50_TARGET = 1.5  # ShopPulse's p50 at the steady rate / the floor's
P99_TARGET_MS = 50.0  # ShopPulse's p99 at the steady rate
#: At light load an acknowledgement should wait for one commit: its mean at 1 connection over
#: the writer's mean commit time, at most this.
ONE_COMMIT_TARGET = 1.5
#: Before each phase, wait (at most IDLE_TIMEOUT s) until every server uses under IDLE_CORES.
IDLE_CORES = 0.1
IDLE_WINDOW = 0.5
IDLE_TIMEOUT = 30.0

console = Console(width=max(Console().width, 120))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), 0.0 where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def thread_names(pid: int) -> dict[str, str]:
    """Python thread names by OS thread id, read once with py-spy (when installed): Python does
    not name its threads for the OS, so /proc shows them all as "python"."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    try:
        dump = subprocess.run(
            [spy, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=20
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return dict(re.findall(r'Thread (\d+) \([^)]*\): "([^"]+)"', dump))


def thread_cpu(pid: int, names: dict[str, str]) -> dict[str, float]:
    """CPU seconds of each thread of a process, by thread name (unnamed: "other")."""
    ticks = os.sysconf("SC_CLK_TCK")
    seconds: dict[str, float] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return seconds
    for tid in tids:
        try:
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = names.get(tid, "other (native)")
        seconds[name] = seconds.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return seconds


def service_metric(text: str, name: str) -> float:
    """The value of an unlabelled sample in Prometheus text (0.0 when absent)."""
    match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


@dataclass
class Server:
    """One server subprocess on 127.0.0.1."""

    name: str
    command: list[str]
    port: int
    workdir: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    thread_names: dict[str, str] = field(default_factory=dict)

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def start(self, timeout: float = 60.0) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0) as client:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited at start:\n{self.log_tail()}")
                try:
                    if client.get(f"http://127.0.0.1:{self.port}/healthz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"{self.name} not ready in {timeout:.0f} s")
                time.sleep(0.05)

    def cpu(self) -> float:
        return cpu_seconds(self.process.pid) if self.process is not None else 0.0

    def threads(self) -> dict[str, float]:
        """CPU seconds by thread (ShopPulse only: its threads are named)."""
        if self.process is None or self.name != "shoppulse":
            return {}
        if not self.thread_names:
            self.thread_names = thread_names(self.process.pid)
        return thread_cpu(self.process.pid, self.thread_names)

    def writer_commits(self) -> tuple[float, float]:
        """(batches, seconds) the ShopPulse writer has committed so far, from its /metrics."""
        if self.name != "shoppulse":
            return 0.0, 0.0
        text = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=5).text
        return (
            service_metric(text, "shoppulse_writer_commit_seconds_count"),
            service_metric(text, "shoppulse_writer_commit_seconds_sum"),
        )

    def stop(self, timeout: float = 120.0) -> None:
        """SIGTERM, wait for the graceful exit (ShopPulse checkpoints its database), else kill."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Measured:
    result: PhaseResult
    server_cpu: float
    client_cpu: float
    #: CPU seconds by server thread during the phase (ShopPulse only).
    threads: dict[str, float] = field(default_factory=dict)
    #: Writer batches committed during the phase, and their total seconds (ShopPulse only).
    commits: tuple[float, float] = (0.0, 0.0)

    @property
    def server_cpu_share(self) -> float:
        """Cores the server used during the phase (1.0 = one core busy all the time)."""
        return self.server_cpu / self.result.elapsed if self.result.elapsed else float("nan")

    @property
    def server_us_per_request(self) -> float:
        total = self.result.total_sent
        return self.server_cpu / total * 1e6 if total else float("nan")


@dataclass
class Run:
    name: str
    closed: dict[int, Measured] = field(default_factory=dict)
    steady: Measured | None = None


def service_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPPULSE_")}
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def uvicorn_server(name: str, app: str, workdir: Path, env: dict[str, str]) -> Server:
    """An ASGI app of bench/ under uvicorn, set up as ShopPulse serves its own."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--app-dir",
        str(BENCH),
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--log-level",
        "warning",
        "--timeout-keep-alive",
        "5",
    ]
    return Server(name, command, port, workdir, env)


def bare_server(workdir: Path) -> Server:
    return uvicorn_server("bare", "bare_app:app", workdir, service_env())


def floor_server(workdir: Path) -> Server:
    env = service_env() | {"FLOOR_DB": str(workdir / "floor.duckdb"), "FLOOR_SECRET": SECRET}
    return uvicorn_server("floor", "floor_app:app", workdir, env)


def shoppulse_server(workdir: Path, log_level: str, db: Path | None = None) -> Server:
    """`shoppulse serve` with one Shopify source (SOURCE, SECRET) on `db` (default: a fresh
    database under `workdir`)."""
    port = free_port()
    config = workdir / "sources.toml"
    config.write_text(
        f'[[sources]]\nid = "{SOURCE}"\nprovider = "shopify"\nsecrets = ["{SECRET}"]\n'
    )
    command = [
        sys.executable,
        "-m",
        "shoppulse.cli",
        "serve",
        "--config",
        str(config),
        "--db",
        str(db or workdir / "data" / "shoppulse.duckdb"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        log_level,
    ]
    return Server("shoppulse", command, port, workdir, service_env())


async def settle(servers: list[Server], timeout: float = IDLE_TIMEOUT) -> None:
    """Wait until no server is still busy with the previous phase.

    ShopPulse keeps working after its last answer (folding metrics, publishing), and that work
    must not land in the other server's measurement.
    """
    deadline = time.monotonic() + timeout
    before = [server.cpu() for server in servers]
    while time.monotonic() < deadline:
        await asyncio.sleep(IDLE_WINDOW)
        now = [server.cpu() for server in servers]
        if all(b - a < IDLE_CORES * IDLE_WINDOW for a, b in zip(before, now, strict=True)):
            return
        before = now
    console.print(f"  [yellow]servers still busy after {timeout:.0f} s; measuring anyway[/]")


async def _phase(
    server: Server, orders: ShopifyOrders, kind: str, value: float, args: argparse.Namespace
) -> Measured:
    cpu0, own0 = server.cpu(), _own_cpu()
    threads0, commits0 = server.threads(), server.writer_commits()
    if kind == "closed":
        result = await run_closed(
            "127.0.0.1",
            server.port,
            orders,
            concurrency=int(value),
            duration=args.duration,
            warmup=args.warmup,
        )
    else:
        result = await run_open(
            "127.0.0.1",
            server.port,
            orders,
            rate=value,
            duration=args.rate_duration,
            warmup=args.warmup,
        )
    if server.name == "shoppulse":
        # ShopPulse folds and publishes for a while after its last answer: that work is part
        # of what the phase's deliveries cost.
        await settle([server])
    threads1, commits1 = server.threads(), server.writer_commits()
    measured = Measured(
        result,
        server.cpu() - cpu0,
        _own_cpu() - own0,
        {name: cpu - threads0.get(name, 0.0) for name, cpu in threads1.items()},
        (commits1[0] - commits0[0], commits1[1] - commits0[1]),
    )
    _progress(server.name, measured)
    return measured


async def drive(servers: list[Server], args: argparse.Namespace) -> dict[str, Run]:
    """Each phase on each server in turn, so that both meet the same machine conditions."""
    runs = {server.name: Run(server.name) for server in servers}
    orders = {
        server.name: ShopifyOrders(
            "127.0.0.1",
            server.port,
            SOURCE,
            SECRET,
            prefix=f"bench-{server.name}",
            pretty=args.pretty,
        )
        for server in servers
    }
    for concurrency in args.concurrency:
        for server in servers:
            await settle(servers)
            measured = await _phase(server, orders[server.name], "closed", concurrency, args)
            runs[server.name].closed[concurrency] = measured
    if args.rate > 0:
        for server in servers:
            await settle(servers)
            measured = await _phase(server, orders[server.name], "open", args.rate, args)
            runs[server.name].steady = measured
    return runs


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system


def _progress(name: str, measured: Measured) -> None:
    result = measured.result
    console.print(
        f"  {name:9s} {result.name:>9s}: {result.throughput:8.0f}/s  "
        f"p50 {result.latency_ms(50):6.1f} ms  p99 {result.latency_ms(99):7.1f} ms  "
        f"non-2xx {result.failed}  errors {result.errors}  "
        f"server CPU {measured.server_cpu_share:.2f} cores, load generator "
        f"{measured.client_cpu / result.elapsed:.2f}",
        highlight=False,
    )


def acknowledged_keys(run: Run) -> list[str]:
    phases = [m.result for m in run.closed.values()]
    phases += [run.steady.result] if run.steady else []
    return [key for phase in phases for key in phase.acknowledged]


def verify_floor(db: Path, acknowledged: list[str]) -> tuple[bool, str]:
    """Every delivery the floor acknowledged is in its database."""
    acked = pa.table({"delivery_id": pa.array(acknowledged, pa.string())})
    with duckdb.connect(str(db), read_only=True) as con:
        con.register("acked", acked)
        row = con.execute(
            "SELECT count(*) FROM acked a JOIN deliveries d USING (delivery_id)"
        ).fetchone()
    stored = row[0] if row else 0
    return stored == len(acknowledged), (
        f"floor: {len(acknowledged):,} deliveries acknowledged, {stored:,} of them stored"
    )


def verify_storage(db: Path, acknowledged: list[str]) -> tuple[bool, str]:
    """Every acknowledged ShopPulse delivery is in `deliveries` once, with its one event."""
    acked = pa.table({"delivery_id": pa.array(acknowledged, pa.string())})
    with duckdb.connect(str(db), read_only=True) as con:
        con.register("acked", acked)
        row = con.execute(
            """
            SELECT
                (SELECT count(DISTINCT delivery_id) FROM acked),
                (SELECT count(*) FROM acked a JOIN deliveries d
                    ON d.source = $source AND d.delivery_id = a.delivery_id),
                (SELECT count(*) FROM acked a JOIN deliveries d
                    ON d.source = $source AND d.delivery_id = a.delivery_id
                    JOIN events e ON e.delivery_seq = d.delivery_seq),
                (SELECT count(*) FROM deliveries WHERE source = $source)
            """,
            {"source": SOURCE},
        ).fetchone()
    distinct, stored, with_event, total = row if row else (0, 0, 0, 0)
    ok = len(acknowledged) == distinct == stored == with_event
    return ok, (
        f"{len(acknowledged):,} deliveries acknowledged; {stored:,} of them are stored, "
        f"{with_event:,} with their event ({total:,} deliveries in the database)"
    )


def _ms(value: float) -> str:
    return f"{value:.1f}"


def _ratio(run: Run, bare: Run, concurrency: int) -> float:
    top = bare.closed[concurrency].result.throughput
    return run.closed[concurrency].result.throughput / top if top else 0.0


def _peak(run: Run, label: str, bare: Run, args: argparse.Namespace) -> float:
    """Print `run`'s best throughput as a ratio of the bare endpoint's best (no target: the
    targets are stated against the floor); return the ratio."""
    best_bare = max(args.concurrency, key=lambda c: bare.closed[c].result.throughput)
    best = max(args.concurrency, key=lambda c: run.closed[c].result.throughput)
    top_bare = bare.closed[best_bare].result.throughput
    top = run.closed[best].result.throughput
    ratio = top / top_bare if top_bare else 0.0
    console.print(
        f"Peak throughput: {label} {top:,.0f} deliveries/s ({best} connections), "
        f"bare {top_bare:,.0f} req/s ({best_bare} connections): ratio {ratio:.2f}",
        highlight=False,
    )
    return ratio


def _verdict(ok: bool) -> str:
    return "[green]met[/]" if ok else "[red]missed[/]"


def thread_table(shop: Run) -> Table:
    """ShopPulse's CPU per delivery by thread, per phase (work after the last answer included)."""
    phases = [(f"{c} conns", m) for c, m in shop.closed.items()]
    phases += [("steady", shop.steady)] if shop.steady is not None else []
    names = sorted(
        {name for _, m in phases for name in m.threads},
        key=lambda name: -sum(m.threads.get(name, 0.0) for _, m in phases),
    )
    table = Table(title="ShopPulse: CPU µs per delivery by thread")
    table.add_column("thread")
    for label, _ in phases:
        table.add_column(label, justify="right")
    for name in [*names, "all"]:
        cells = []
        for _, m in phases:
            sent = m.result.total_sent or 1
            cpu = sum(m.threads.values()) if name == "all" else m.threads.get(name, 0.0)
            cells.append(f"{cpu / sent * 1e6:,.0f}")
        table.add_row(name, *cells)
    return table


def against_floor(floor: Run, shop: Run, args: argparse.Namespace) -> bool:
    """Print each target stated against the floor of the same run; True when all are met."""
    passed = True
    top = max(args.concurrency)
    f, s = floor.closed[top], shop.closed[top]
    peak = s.result.throughput / f.result.throughput if f.result.throughput else 0.0
    cpu = s.server_us_per_request / f.server_us_per_request if f.server_us_per_request else 0.0
    console.print(
        f"At {top} connections: ShopPulse {s.result.throughput:,.0f} deliveries/s, floor "
        f"{f.result.throughput:,.0f}/s: {peak:.2f}x (target ≥ {FLOOR_PEAK_TARGET}) "
        f"{_verdict(peak >= FLOOR_PEAK_TARGET)}; CPU per delivery "
        f"{s.server_us_per_request:,.0f} µs against {f.server_us_per_request:,.0f} µs: "
        f"{cpu:.2f}x (target ≤ {FLOOR_CPU_TARGET}) {_verdict(cpu <= FLOOR_CPU_TARGET)}",
        highlight=False,
    )
    passed &= peak >= FLOOR_PEAK_TARGET and cpu <= FLOOR_CPU_TARGET
    if 1 in shop.closed:
        light = shop.closed[1]
        batches, seconds = light.commits
        acks = light.result.latencies
        if batches and acks:
            commit_ms = seconds / batches * 1000
            ack_ms = sum(acks) / len(acks) * 1000
            waits = ack_ms / commit_ms
            console.print(
                f"At 1 connection: mean acknowledgement {ack_ms:.1f} ms, mean writer commit "
                f"{commit_ms:.1f} ms ({batches:,.0f} batches for {light.result.total_sent:,} "
                f"deliveries): an acknowledgement takes {waits:.2f} commits "
                f"(target ≤ {ONE_COMMIT_TARGET}) {_verdict(waits <= ONE_COMMIT_TARGET)}",
                highlight=False,
            )
            passed &= waits <= ONE_COMMIT_TARGET
    if floor.steady is not None and shop.steady is not None:
        fp50, sp50 = floor.steady.result.latency_ms(50), shop.steady.result.latency_ms(50)
        sp99 = shop.steady.result.latency_ms(99)
        ratio = sp50 / fp50 if fp50 else float("inf")
        ok = ratio <= STEADY_P50_TARGET and sp99 <= P99_TARGET_MS and shop.steady.result.failed == 0
        console.print(
            f"Steady {args.rate:,.0f}/s for {args.rate_duration:g} s: ShopPulse p50 {sp50:.1f} ms "
            f"against the floor's {fp50:.1f} ms: {ratio:.2f}x (target ≤ {STEADY_P50_TARGET}); "
            f"p99 {sp99:.1f} ms (target ≤ {P99_TARGET_MS:g} ms); "
            f"{shop.steady.result.failed} non-2xx {_verdict(ok)}",
            highlight=False,
        )
        passed &= ok
    return passed


def report(bare: Run, shop: Run, args: argparse.Namespace, floor: Run | None = None) -> bool:
    table = Table(title="Closed loop: N connections, each sending as soon as it is answered")
    columns = ["conns", "bare\nreq/s", "bare\np50 ms", "bare\np99 ms"]
    if floor is not None:
        columns += [
            "floor\ndeliveries/s",
            "floor\np99 ms",
            "ratio\nfloor/bare",
            "floor CPU µs\nper delivery",
        ]
    columns += [
        "ShopPulse\ndeliveries/s",
        "ShopPulse\np50 ms",
        "ShopPulse\np99 ms",
        "ratio\nShopPulse/bare",
        "server CPU µs\nper req, bare",
        "server CPU µs per\ndelivery, ShopPulse",
    ]
    for column in columns:
        table.add_column(column, justify="right")
    for concurrency in args.concurrency:
        b, s = bare.closed[concurrency], shop.closed[concurrency]
        cells = [
            str(concurrency),
            f"{b.result.throughput:,.0f}",
            _ms(b.result.latency_ms(50)),
            _ms(b.result.latency_ms(99)),
        ]
        if floor is not None:
            f = floor.closed[concurrency].result
            cells += [
                f"{f.throughput:,.0f}",
                _ms(f.latency_ms(99)),
                f"{_ratio(floor, bare, concurrency):.2f}",
                f"{floor.closed[concurrency].server_us_per_request:,.0f}",
            ]
        cells += [
            f"{s.result.throughput:,.0f}",
            _ms(s.result.latency_ms(50)),
            _ms(s.result.latency_ms(99)),
            f"{_ratio(shop, bare, concurrency):.2f}",
            f"{b.server_us_per_request:,.0f}",
            f"{s.server_us_per_request:,.0f}",
        ]
        table.add_row(*cells)
    console.print(table)
    passed = True
    if args.concurrency:
        if floor is not None:
            _peak(floor, "floor", bare, args)
        _peak(shop, "ShopPulse", bare, args)
    if bare.steady is not None and shop.steady is not None:
        steady = Table(
            title=f"Steady rate: {args.rate:,.0f} deliveries/s for {args.rate_duration:g} s"
        )
        for column in (
            "server",
            "achieved/s",
            "p50 ms",
            "p99 ms",
            "max ms",
            "non-2xx",
            "connections",
            "server CPU (cores)",
        ):
            steady.add_column(column, justify="right")
        for run in (bare, floor, shop):
            if run is None or run.steady is None:
                continue
            r = run.steady.result
            steady.add_row(
                run.name,
                f"{r.throughput:,.0f}",
                _ms(r.latency_ms(50)),
                _ms(r.latency_ms(99)),
                _ms(r.latency_ms(100)),
                str(r.failed + r.errors),
                str(r.max_connections),
                f"{run.steady.server_cpu_share:.2f}",
            )
        console.print(steady)
    console.print(thread_table(shop))
    if floor is not None and args.concurrency:
        passed &= against_floor(floor, shop, args)
    else:
        console.print("The targets are stated against the floor: run with --floor to see them.")
    return passed


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--duration", type=float, default=5.0, help="measured seconds per concurrency (default 5)"
    )
    parser.add_argument(
        "--warmup", type=float, default=1.0, help="unmeasured seconds before each phase (default 1)"
    )
    parser.add_argument(
        "--concurrency",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 8, 32, 64],
        help="connections, comma-separated (1,8,32,64)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=500.0,
        help="deliveries/s of the steady-rate run; 0 skips it (default 500)",
    )
    parser.add_argument(
        "--rate-duration",
        type=float,
        default=60.0,
        help="measured seconds of the steady-rate run (default 60: long enough for the "
        "database's checkpoints to fall inside it)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        help="ShopPulse's log level (default info, as `shoppulse serve`)",
    )
    parser.add_argument(
        "--pretty",
        action="store_true",
        help="send the sample order pretty-printed (14.9 KB) instead of compact "
        "(10.7 KB, as Shopify sends it)",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also measure bench/floor_app.py, the least a durable, verified endpoint must do",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directory (database, server logs)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    loop = install_uvloop()
    console.print(
        f"ingest benchmark: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"DuckDB {duckdb.__version__}, load generator on {loop} in this process",
        highlight=False,
    )
    workdir = Path(tempfile.mkdtemp(prefix="shoppulse-bench-"))
    servers = [bare_server(workdir), shoppulse_server(workdir, args.log_level)]
    if args.floor:
        servers.insert(1, floor_server(workdir))
    load_before = os.getloadavg()[0]
    try:
        for server in servers:
            server.start()
        try:
            runs = asyncio.run(drive(servers, args))
        finally:
            for server in servers:
                server.stop()
        for server in servers:
            if server.process is not None and server.process.returncode not in (0, -15):
                console.print(f"[red]{server.name} exited with {server.process.returncode}[/]")
                console.print(server.log_tail())
        shop = runs["shoppulse"]
        stored_ok, detail = verify_storage(
            workdir / "data" / "shoppulse.duckdb", acknowledged_keys(shop)
        )
        floor = runs.get("floor")
        report(runs["bare"], shop, args, floor)
        load_after = os.getloadavg()[0]
        cores = os.cpu_count() or 1
        console.print(
            f"load average {load_before:.1f} before, {load_after:.1f} after ({cores} cores)"
            + (
                " [yellow]— other work shared the CPU; compare only the ratios, or re-run[/]"
                if max(load_before, load_after) > cores + 1
                else ""
            ),
            highlight=False,
        )
        console.print(
            ("[green]durable:[/] " if stored_ok else "[red]NOT DURABLE:[/] ") + detail,
            highlight=False,
        )
        if floor is not None:
            floor_ok, said = verify_floor(workdir / "floor.duckdb", acknowledged_keys(floor))
            console.print(("" if floor_ok else "[red]") + said, highlight=False)
        if args.keep:
            console.print(f"kept {workdir}")
        return 0 if stored_ok else 1
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
