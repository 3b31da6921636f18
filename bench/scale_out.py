"""Scale-out benchmark: an intake replica and the store against the embedded service and the
floor, in one run (docs/scale-out.md, docs/performance.md).

    .venv/bin/python bench/scale_out.py                       # about 2-3 minutes
    .venv/bin/python bench/scale_out.py --duration 5 --drain 20000

Same payloads as bench/ingest.py (the real Shopify sample order, 10.7 KB, a new order id and
delivery id each, signed), the same closed-loop load generator (bench/_load.py) and the same
uvicorn setup. Tiers, each loaded in turn at `--concurrency` connections once every server is
idle:

- `embedded`: `shoppulse serve` (verify, normalize, group-commit to DuckDB, fold, publish);
- `intake`: one `shoppulse intake` replica publishing to a local nats-server (JetStream, one
  node, default fsync interval); the store is not running, so its work is not in the figure;
- `floor`: bench/floor_app.py (verify, parse, group-commit the raw body), and `floor-parse`: the
  same with FLOOR_STORE=0 (verify and parse only: the cost a replica cannot avoid).

For each: deliveries/s, ack latency p50/p99 and server CPU per delivery (nats-server's CPU is
shown apart). Target: the replica's CPU per delivery at most 1.5 x the floor's verify-and-parse.

Then the store's drain rate: the stream is filled with `--drain` deliveries (100,000 by default,
published straight to the log as a replica would), `shoppulse store` starts with fold and
publishing on, and the time from its start until it has committed and acknowledged them all is
measured. Target: at least 3 x the embedded service's throughput of the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
if str(BENCH.parent) not in sys.path:
    sys.path.insert(0, str(BENCH.parent))

import httpx  # noqa: E402
import orjson  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from bench._load import ShopifyOrders, install_uvloop, run_closed  # noqa: E402
from bench._ports import free_port  # noqa: E402
from bench.ingest import (  # noqa: E402
    SECRET,
    SOURCE,
    Measured,
    Server,
    _own_cpu,
    console,
    cpu_seconds,
    floor_server,
    service_env,
    settle,
    shoppulse_server,
    uvicorn_server,
)
from ingest.providers import get_provider  # noqa: E402
from ingest.storage.writer import Delivery  # noqa: E402
from shoppulse.scale_out import envelope  # noqa: E402
from shoppulse.scale_out.connection import connect  # noqa: E402
from shoppulse.scale_out.server import ServerConfig  # noqa: E402
from shoppulse.scale_out.settings import LogSettings  # noqa: E402
from shoppulse.scale_out.signing import LogSigner  # noqa: E402
from shoppulse.scale_out.stream import StreamSpec, delivery_subject, ensure_stream  # noqa: E402

INTAKE_TARGET = 1.5  # x the floor's verify-and-parse CPU per delivery
DRAIN_TARGET = 3.0  # x the embedded service's throughput
CLI = [sys.executable, "-c", "from shoppulse.cli import main; main()"]
#: The log signing key of the roles' sources file (the prefill signs with it as intake would).
SIGNING_KEY = "bench-scale-out-log-signing-key-0123456789"


class NatsServer:
    """A local nats-server with JetStream for the benchmark (stopped by PID at the end)."""

    def __init__(self, workdir: Path) -> None:
        self.config = ServerConfig("bench", free_port(), free_port(), workdir / "nats-store")
        self.command = self.config.command(self.config.write(workdir / "nats.conf"))
        self.log_path = workdir / "nats-server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 20
        while True:
            try:
                url = f"http://127.0.0.1:{self.config.http_port}/healthz"
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"nats-server not ready:\n{self.log_path.read_text()}")
            time.sleep(0.05)

    def cpu(self) -> float:
        return cpu_seconds(self.process.pid) if self.process is not None else 0.0

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def role_server(role: str, workdir: Path, log_url: str, log_level: str) -> Server:
    port = free_port()
    config = workdir / "sources.toml"
    config.write_text(
        f'[[sources]]\nid = "{SOURCE}"\nprovider = "shopify"\nsecrets = ["{SECRET}"]\n'
        f'\n[log]\nsigning_keys = ["{SIGNING_KEY}"]\n'
    )
    database = ["--db", str(workdir / "store" / "shoppulse.duckdb")] if role == "store" else []
    command = [
        *CLI, role, "--config", str(config), *database, "--log", log_url,
        "--host", "127.0.0.1", "--port", str(port), "--log-level", log_level,
    ]  # fmt: skip
    return Server(role, command, port, workdir, service_env())


def floor_parse_server(workdir: Path) -> Server:
    env = service_env() | {"FLOOR_STORE": "0", "FLOOR_SECRET": SECRET}
    return uvicorn_server("floor-parse", "floor_app:app", workdir, env)


@dataclass
class Tier:
    measured: Measured
    nats_cpu: float  # nats-server's CPU seconds during the phase (intake only)

    @property
    def nats_us_per_delivery(self) -> float:
        total = self.measured.result.total_sent
        return self.nats_cpu / total * 1e6 if total else 0.0


async def load(server: Server, args: argparse.Namespace, nats: NatsServer | None) -> Tier:
    orders = ShopifyOrders("127.0.0.1", server.port, SOURCE, SECRET, prefix=f"b-{server.name}")
    cpu0, nats0, own0 = server.cpu(), nats.cpu() if nats else 0.0, _own_cpu()
    result = await run_closed(
        "127.0.0.1",
        server.port,
        orders,
        concurrency=args.concurrency,
        duration=args.duration,
        warmup=args.warmup,
    )
    measured = Measured(result, server.cpu() - cpu0, _own_cpu() - own0)
    tier = Tier(measured, nats.cpu() - nats0 if nats else 0.0)
    extra = f"  nats-server {tier.nats_us_per_delivery:5.0f} µs/delivery" if nats else ""
    console.print(
        f"  {server.name:11s} {result.throughput:7.0f}/s  p50 {result.latency_ms(50):6.1f} ms  "
        f"p99 {result.latency_ms(99):7.1f} ms  non-2xx {result.failed}  errors {result.errors}  "
        f"CPU {measured.server_us_per_request:5.0f} µs/delivery{extra}",
        highlight=False,
    )
    return tier


async def prefill(url: str, count: int) -> float:
    """Publish `count` deliveries as a replica would (normalized events, raw body); seconds."""
    shopify = get_provider("shopify")
    orders = ShopifyOrders("127.0.0.1", 0, SOURCE, SECRET, first_order_id=8_000_000_000_001)
    nc = await connect(LogSettings(url=url), name="bench-prefill")
    js = nc.jetstream(timeout=30.0)
    signer = LogSigner((SecretStr(SIGNING_KEY),))
    started = time.perf_counter()
    try:
        pending: list[asyncio.Future[object]] = []
        for n in range(count):
            body = orders.body(8_000_000_000_001 + n)
            headers = {"x-shopify-topic": "orders/create"}
            delivery = Delivery(
                source=SOURCE,
                delivery_id=f"drain-{n}",
                topic="orders/create",
                received_at=datetime.now(UTC),
                headers=orjson.dumps(headers).decode(),
                body=body,
                events=shopify.normalize("orders/create", orjson.loads(body), headers),
            )
            subject, data = delivery_subject(SOURCE), envelope.encode(delivery)
            msg_id = envelope.message_id(SOURCE, delivery.delivery_id)
            pending.append(
                asyncio.ensure_future(
                    js.publish(subject, data, headers=signer.headers(subject, msg_id, data))
                )
            )
            if len(pending) >= 512:
                await asyncio.gather(*pending)
                pending.clear()
            if (n + 1) % 20_000 == 0:
                console.print(f"  prefilled {n + 1:,} of {count:,}", highlight=False)
        await asyncio.gather(*pending)
    finally:
        await nc.close()
    return time.perf_counter() - started


def drain(store: Server, count: int) -> tuple[float, float]:
    """Start the store and wait until it has committed `count` deliveries; (seconds, CPU s)."""
    store.start()
    started, cpu0 = time.perf_counter(), store.cpu()
    deadline = started + 1800
    last_print = started
    with httpx.Client(base_url=f"http://127.0.0.1:{store.port}", timeout=10) as client:
        while True:
            log = client.get("/api/v1/ingest/stats").json()["log"]
            if log["committed_since_start"] >= count and log["behind"] == 0:
                return time.perf_counter() - started, store.cpu() - cpu0
            now = time.perf_counter()
            if now - last_print > 5:
                console.print(
                    f"  store: {log['committed_since_start']:,} committed, {log['behind']:,} "
                    f"behind ({log['committed_since_start'] / (now - started):,.0f}/s)",
                    highlight=False,
                )
                last_print = now
            if now > deadline:
                raise RuntimeError("the store did not drain within 30 minutes")
            time.sleep(0.2)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=10.0, help="measured s per tier (10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured s per tier (2)")
    parser.add_argument("--concurrency", type=int, default=64, help="connections (64)")
    parser.add_argument(
        "--drain", type=int, default=100_000, help="deliveries the store drains (100,000)"
    )
    parser.add_argument("--log-level", default="info", help="the servers' log level (info)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    return parser.parse_args(argv)


async def measure_tiers(
    args: argparse.Namespace, workdir: Path, nats: NatsServer
) -> dict[str, Tier]:
    for name in ("embedded", "intake", "floor", "floor-parse"):
        (workdir / name).mkdir(parents=True, exist_ok=True)
    servers = {
        "embedded": shoppulse_server(workdir / "embedded", args.log_level),
        "intake": role_server("intake", workdir / "intake", nats.config.url, args.log_level),
        "floor": floor_server(workdir / "floor"),
        "floor-parse": floor_parse_server(workdir / "floor-parse"),
    }
    for name, server in servers.items():
        server.name = name
    results: dict[str, Tier] = {}
    try:
        for server in servers.values():
            server.start()
        for name, server in servers.items():
            await settle([*servers.values(), nats])  # type: ignore[list-item]
            results[name] = await load(server, args, nats if name == "intake" else None)
    finally:
        for server in servers.values():
            server.stop()
    return results


def report(
    results: dict[str, Tier], drained: tuple[float, float], args: argparse.Namespace
) -> bool:
    table_rows = []
    for name, tier in results.items():
        measured, result = tier.measured, tier.measured.result
        table_rows.append(
            f"| {name} | {result.throughput:,.0f} | {result.latency_ms(50):.1f} | "
            f"{result.latency_ms(99):.1f} | {measured.server_us_per_request:,.0f} |"
        )
    console.print("\n| tier | deliveries/s | p50 ms | p99 ms | CPU µs/delivery |")
    console.print("| --- | --- | --- | --- | --- |")
    for row in table_rows:
        console.print(row, highlight=False)
    intake, parse = results["intake"].measured, results["floor-parse"].measured
    cpu_ratio = intake.server_us_per_request / parse.server_us_per_request
    seconds, cpu = drained
    rate = args.drain / seconds
    embedded = results["embedded"].measured.result.throughput
    drain_ratio = rate / embedded if embedded else 0.0
    nats_us = results["intake"].nats_us_per_delivery
    console.print(
        f"\nintake replica CPU per delivery: {intake.server_us_per_request:,.0f} µs = "
        f"{cpu_ratio:.2f} x the floor's verify-and-parse ({parse.server_us_per_request:,.0f} µs); "
        f"target ≤ {INTAKE_TARGET} "
        + ("[green]met[/]" if cpu_ratio <= INTAKE_TARGET else "[red]missed[/]")
        + f"  (nats-server: {nats_us:,.0f} µs per delivery on top)",
        highlight=False,
    )
    console.print(
        f"store drain: {args.drain:,} deliveries in {seconds:.1f} s = {rate:,.0f}/s "
        f"({cpu / args.drain * 1e6:,.0f} µs CPU each, fold and publishing on) = "
        f"{drain_ratio:.2f} x the embedded service's {embedded:,.0f}/s; target ≥ {DRAIN_TARGET} "
        + ("[green]met[/]" if drain_ratio >= DRAIN_TARGET else "[red]missed[/]"),
        highlight=False,
    )
    return cpu_ratio <= INTAKE_TARGET and drain_ratio >= DRAIN_TARGET


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    loop_name = install_uvloop()
    console.print(
        f"scale-out benchmark: {args.concurrency} connections, {args.duration:g} s per tier, "
        f"drain of {args.drain:,}; load generator on {loop_name}",
        highlight=False,
    )
    directory = tempfile.mkdtemp(prefix="shoppulse-scale-out-")
    workdir = Path(directory)
    nats = NatsServer(workdir)
    nats.start()
    try:
        asyncio.run(_init(nats.config.url))
        results = asyncio.run(measure_tiers(args, workdir, nats))
        console.print(f"\nfilling the stream with {args.drain:,} deliveries ...")
        asyncio.run(_purge_and_fill(nats.config.url, args.drain))
        (workdir / "store-role").mkdir(exist_ok=True)
        store = role_server("store", workdir / "store-role", nats.config.url, args.log_level)
        try:
            drained = drain(store, args.drain)
        finally:
            store.stop()
        ok = report(results, drained, args)
    finally:
        nats.stop()
        if args.keep:
            console.print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


async def _init(url: str) -> None:
    nc = await connect(LogSettings(url=url), name="bench")
    try:
        await ensure_stream(nc.jetstream(timeout=10), StreamSpec(LogSettings().stream))
    finally:
        await nc.close()


async def _purge_and_fill(url: str, count: int) -> None:
    """Empty the stream (the intake tier's deliveries), then fill it with `count`."""
    nc = await connect(LogSettings(url=url), name="bench")
    try:
        await nc.jetstream(timeout=30).purge_stream(LogSettings().stream)
    finally:
        await nc.close()
    seconds = await prefill(url, count)
    console.print(f"  {count:,} published in {seconds:.1f} s", highlight=False)


if __name__ == "__main__":
    sys.exit(main())
