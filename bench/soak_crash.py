"""Crash soak: kill -9 the service under concurrent load, again and again, and check everything.

    .venv/bin/python bench/soak_crash.py                         # 20 cycles over 1M stored events
    .venv/bin/python bench/soak_crash.py --cycles 5 --seed-events 0    # a quick run

The real `shoppulse serve` (tests/e2e/server.py's ServiceProcess, 127.0.0.1, a free port) takes
signed Shopify orders/create deliveries from several threads and is SIGKILLed at a random point
of each cycle. After every kill:

- the database file as the crash left it holds every acknowledged delivery exactly once, with its
  event;
- the restarted service is timed: process start to /healthz (accepting deliveries) and to
  /readyz; the time a fresh interpreter needs just to import the service is measured once, so the
  database's share of a restart can be told apart from Python's;
- the sender retries what got no answer (stored or duplicate) and re-sends a few acknowledged
  deliveries (duplicates, stored once);
- GET /api/v1/metrics/check on the restarted service returns {"equal": true}: the incremental
  metrics equal a full recompute from the stored events.

With --seed-events N the database first gets N stored order events (written straight into the
file, then folded by a first start), so restarts are measured with that much history.
Results are printed and, with --json, written to a file.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
# Run as a script, Python puts bench/ first on sys.path, where bench/ingest.py would shadow the
# `ingest` package: import from the project root instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
if str(BENCH.parent) not in sys.path:
    sys.path.insert(0, str(BENCH.parent))

import duckdb  # noqa: E402
import httpx  # noqa: E402
import orjson  # noqa: E402

from ingest.providers import get_provider  # noqa: E402
from ingest.stats import IngestStats  # noqa: E402
from ingest.storage.writer import Writer  # noqa: E402
from metrics.engine import MetricsEngine  # noqa: E402
from shoppulse.database import open_database  # noqa: E402
from tests.e2e.server import ServiceProcess, http_client  # noqa: E402

SOURCE = "soak"
SECRET = "soak-secret"
TOPIC = "orders/create"
SHOPIFY = get_provider("shopify")
ORDER_FIXTURE = BENCH.parent / "tests" / "fixtures" / "webhooks" / "shopify" / "orders_create.json"
RESTART_TARGET_S = 2.0


# ----------------------------------------------------------------------------- seeding


def seed(db: Path, events: int) -> float:
    """Write `events` stored order deliveries (one event each) straight into a new database."""
    started = time.perf_counter()
    con = open_database(db)
    MetricsEngine(con)  # the metrics tables, as the service would make them
    end = datetime.now(UTC).replace(microsecond=0)
    start = end - timedelta(days=30)
    step_us = int((end - start).total_seconds() * 1e6 / max(events, 1))
    con.execute("BEGIN")
    con.execute(
        """
        INSERT INTO deliveries (delivery_seq, source, delivery_id, topic, received_at, headers,
                                body, status, reason, event_count)
        SELECT i, ?, 'seed-' || i, ?, ?::TIMESTAMPTZ + to_microseconds(i * ?), '{}', NULL,
               'accepted', NULL, 1
        FROM range(1, ? + 1) t(i)
        """,
        [SOURCE, TOPIC, start, step_us, events],
    )
    con.execute(
        """
        INSERT INTO events (event_seq, delivery_seq, source, received_at, kind, action, entity_id,
                            created_at, updated_at, cart_token, checkout_token, order_id,
                            currency, gross_sales, discounts, refund_amount, test, cancelled,
                            deleted, abandoned, completed)
        SELECT delivery_seq, delivery_seq, source, received_at, 'order', 'create',
               'seed-order-' || delivery_seq, received_at, received_at, NULL, NULL,
               'seed-order-' || delivery_seq, 'USD',
               ((delivery_seq % 20000) / 100)::DECIMAL(18, 4),
               ((delivery_seq % 7) * 1.5)::DECIMAL(18, 4), NULL,
               false, delivery_seq % 50 = 0, false, false, false
        FROM deliveries
        """
    )
    con.execute("COMMIT")
    con.close()
    return time.perf_counter() - started


def storage_start_seconds(db: Path, scratch: Path) -> float:
    """The database's share of a restart, on a copy of the files the crash left: open the file
    (replaying its write-ahead log), load the counters and set up the writer and the engine."""
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    for path in (db, db.with_name(db.name + ".wal")):
        if path.exists():
            shutil.copy2(path, scratch / path.name)
    copy = scratch / db.name
    started = time.perf_counter()
    con = open_database(copy)
    IngestStats().load(con)
    Writer(con)
    MetricsEngine(con)
    seconds = time.perf_counter() - started
    con.close()
    shutil.rmtree(scratch, ignore_errors=True)
    return seconds


def import_seconds() -> float:
    """How long a fresh interpreter takes to import the service (a floor for any restart)."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "import shoppulse.cli, shoppulse.service"],
        cwd=BENCH.parent,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return time.perf_counter() - started


# ----------------------------------------------------------------------------- load


@dataclass(frozen=True)
class Sent:
    delivery_id: str
    order_id: int


class Orders:
    def __init__(self) -> None:
        order = orjson.loads(ORDER_FIXTURE.read_bytes())
        order["id"] = 0
        self._template = order
        self._ids = itertools.count(6_000_000_000_001)
        self._lock = threading.Lock()

    def next_order_id(self) -> int:
        with self._lock:
            return next(self._ids)

    def post(self, client: httpx.Client, sent: Sent) -> httpx.Response:
        body = orjson.dumps(dict(self._template, id=sent.order_id))
        headers = SHOPIFY.sign(
            body, SECRET, topic=TOPIC, delivery_id=sent.delivery_id, timestamp=int(time.time())
        )
        return client.post(f"/webhooks/{SOURCE}", content=body, headers=headers)


@dataclass
class Load:
    """Threads that post fresh deliveries until their connection breaks or `stop` is set."""

    base_url: str
    label: str
    orders: Orders
    threads: int
    acked: list[Sent] = field(default_factory=list)
    unacked: list[Sent] = field(default_factory=list)
    refused: int = 0
    unexpected: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for index in range(self.threads):
            worker = threading.Thread(target=self._run, args=(index,), daemon=True)
            self.workers.append(worker)
            worker.start()

    def _run(self, index: int) -> None:
        with http_client(self.base_url, timeout=10.0) as client:
            for n in itertools.count(1):
                if self.stop.is_set():
                    return
                sent = Sent(f"{self.label}-t{index}-{n}", self.orders.next_order_id())
                try:
                    response = self.orders.post(client, sent)
                except httpx.TransportError:
                    with self.lock:
                        self.unacked.append(sent)
                    return
                with self.lock:
                    if response.status_code == 200 and response.json()["status"] == "stored":
                        self.acked.append(sent)
                    elif response.status_code == 503:  # shed: the sender retries it later
                        self.refused += 1
                        self.unacked.append(sent)
                    else:
                        self.unexpected.append(f"{response.status_code} {response.text[:200]}")
                        return

    def acked_count(self) -> int:
        with self.lock:
            return len(self.acked)

    def join(self) -> None:
        self.stop.set()
        for worker in self.workers:
            worker.join(15)
        if any(worker.is_alive() for worker in self.workers):
            raise RuntimeError("load threads hung")


# ----------------------------------------------------------------------------- checks


def stored_rows(db: Path, ids: list[str]) -> dict[str, tuple[int, int, str, list[str]]]:
    """delivery_id -> (copies, event_count, status, entity ids of its events), for `ids`."""
    with duckdb.connect(str(db), read_only=True) as con:
        con.execute("CREATE TEMP TABLE wanted (delivery_id VARCHAR)")
        con.executemany("INSERT INTO wanted VALUES (?)", [[i] for i in ids])
        rows = con.execute(
            """
            SELECT d.delivery_id, count(*) OVER (PARTITION BY d.delivery_id), d.event_count,
                   d.status,
                   list(e.entity_id ORDER BY e.event_seq) FILTER (WHERE e.entity_id IS NOT NULL)
            FROM deliveries d JOIN wanted w USING (delivery_id)
            LEFT JOIN events e ON e.delivery_seq = d.delivery_seq
            WHERE d.source = ?
            GROUP BY d.delivery_id, d.delivery_seq, d.event_count, d.status
            """,
            [SOURCE],
        ).fetchall()
    return {row[0]: (int(row[1]), int(row[2]), row[3], list(row[4] or [])) for row in rows}


def missing_or_wrong(db: Path, acked: list[Sent]) -> list[str]:
    rows = stored_rows(db, [sent.delivery_id for sent in acked])
    problems = []
    for sent in acked:
        row = rows.get(sent.delivery_id)
        if row is None:
            problems.append(f"{sent.delivery_id}: acknowledged but not stored")
        elif row != (1, 1, "accepted", [str(sent.order_id)]):
            problems.append(f"{sent.delivery_id}: stored as {row}")
    return problems


def wait_ready(service: ServiceProcess, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    with service.client(timeout=2.0) as client:
        while client.get("/readyz").status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError(f"not ready in {timeout:g} s:\n{service.log_tail()}")
            time.sleep(0.02)


@dataclass
class Cycle:
    number: int
    acked: int
    unacked: int
    refused: int
    wal_mb: float
    storage_start_s: float
    restart_healthz_s: float
    restart_readyz_s: float
    check_s: float
    cycle_s: float
    load_s: float
    verify_s: float
    equal: bool
    problems: list[str]


# ----------------------------------------------------------------------------- the soak


def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="shoppulse-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    service = ServiceProcess.for_sources(workdir, {SOURCE: ("shopify", SECRET)})
    report: dict[str, Any] = {"cycles": [], "workdir": str(workdir)}
    print(f"work directory {workdir}")
    report["import_s"] = round(import_seconds(), 3)
    print(f"importing the service in a fresh interpreter: {report['import_s']:.2f} s")
    if args.seed_events:
        seconds = seed(service.db, args.seed_events)
        print(f"seeded {args.seed_events:,} stored order events in {seconds:.1f} s")
        started = time.perf_counter()
        service.start(timeout=600)
        with service.client(timeout=600) as client:
            check = client.get("/api/v1/metrics/check").json()  # folds everything first
        report["first_fold_s"] = round(time.perf_counter() - started, 2)
        print(f"first start and fold of the seed: {report['first_fold_s']:.1f} s "
              f"(equal={check['equal']})")  # fmt: skip
    else:
        service.start()
    orders = Orders()
    all_acked: list[Sent] = []
    duplicates = 0
    cycles: list[Cycle] = []
    try:
        for number in range(1, args.cycles + 1):
            cycle_started = time.perf_counter()
            kill_after = rng.randint(args.kill_min, args.kill_max)
            load = Load(service.base_url, f"c{number}", orders, args.threads)
            load.start()
            deadline = time.monotonic() + args.cycle_timeout
            while load.acked_count() < kill_after and not load.unexpected:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.002)
            service.kill()
            load.join()
            load_s = time.perf_counter() - cycle_started
            if load.unexpected:
                raise RuntimeError(f"unexpected answers: {load.unexpected[:3]}")
            all_acked += load.acked
            wal = service.db.with_name(service.db.name + ".wal")
            wal_mb = wal.stat().st_size / 2**20 if wal.exists() else 0.0
            started = time.perf_counter()
            problems = missing_or_wrong(service.db, all_acked)
            verify_s = time.perf_counter() - started
            storage_s = storage_start_seconds(service.db, workdir / "probe")

            started = time.perf_counter()
            service.start(timeout=600)
            healthz = time.perf_counter() - started
            wait_ready(service)
            readyz = time.perf_counter() - started
            with service.client(timeout=600) as client:
                for sent in load.unacked:  # the sender retries what got no answer
                    for _ in range(100):
                        response = orders.post(client, sent)
                        if response.status_code != 503:
                            break
                        time.sleep(0.05)
                    body = response.json()
                    if response.status_code != 200 or body["status"] not in ("stored", "duplicate"):
                        problems.append(f"retry of {sent.delivery_id}: {response.text[:200]}")
                    all_acked.append(sent)
                for sent in rng.sample(load.acked, min(args.duplicates, len(load.acked))):
                    response = orders.post(client, sent)
                    duplicates += 1
                    if response.json().get("status") != "duplicate":
                        problems.append(f"re-send of {sent.delivery_id}: {response.text[:200]}")
                started = time.perf_counter()
                check = client.get("/api/v1/metrics/check").json()
                check_s = time.perf_counter() - started
            cycle = Cycle(
                number=number,
                acked=len(load.acked),
                unacked=len(load.unacked),
                refused=load.refused,
                wal_mb=round(wal_mb, 2),
                storage_start_s=round(storage_s, 3),
                restart_healthz_s=round(healthz, 3),
                restart_readyz_s=round(readyz, 3),
                check_s=round(check_s, 3),
                cycle_s=round(time.perf_counter() - cycle_started, 2),
                load_s=round(load_s, 2),
                verify_s=round(verify_s, 2),
                equal=bool(check["equal"]),
                problems=problems,
            )
            cycles.append(cycle)
            print(
                f"cycle {number:2d}: killed after {cycle.acked:4d} acks ({cycle.unacked} in flight,"
                f" {cycle.refused} shed), WAL {cycle.wal_mb:6.2f} MB, database start "
                f"{cycle.storage_start_s:5.2f} s, restart "
                f"{cycle.restart_healthz_s:5.2f} s to healthz / {cycle.restart_readyz_s:5.2f} s to "
                f"readyz, recompute check {cycle.check_s:5.2f} s equal={cycle.equal} "
                f"(cycle {cycle.cycle_s:.0f} s: load {cycle.load_s:.0f} s, file check "
                f"{cycle.verify_s:.0f} s)" + (f"  PROBLEMS: {problems[:3]}" if problems else "")
            )
        service.stop()
        final = missing_or_wrong(service.db, all_acked)
        with duckdb.connect(str(service.db), read_only=True) as con:
            row = con.execute(
                "SELECT count(*), count(DISTINCT event_seq) FROM events"
            ).fetchone() or (0, 0)
    finally:
        service.kill()
    restarts = [c.restart_healthz_s for c in cycles]
    storage = [c.storage_start_s for c in cycles]
    report.update(
        cycles=[c.__dict__ for c in cycles],
        acknowledged=len(all_acked),
        duplicates_sent=duplicates,
        events=int(row[0]),
        distinct_event_seqs=int(row[1]),
        final_problems=final,
        restart_healthz_median_s=round(statistics.median(restarts), 3) if restarts else None,
        restart_healthz_max_s=round(max(restarts), 3) if restarts else None,
        storage_start_median_s=round(statistics.median(storage), 3) if storage else None,
        storage_start_max_s=round(max(storage), 3) if storage else None,
        all_equal=all(c.equal for c in cycles),
        ok=not final
        and all(c.equal and not c.problems for c in cycles)
        and int(row[0]) == int(row[1]) == args.seed_events + len(all_acked),
    )
    print(
        f"\n{len(cycles)} kill -9 cycles, {len(all_acked):,} acknowledged deliveries, "
        f"{report['events']:,} events stored ({args.seed_events:,} seeded)\n"
        f"restart to /healthz: median {report['restart_healthz_median_s']} s, max "
        f"{report['restart_healthz_max_s']} s (target {RESTART_TARGET_S:g} s; importing alone "
        f"takes {report['import_s']} s)\n"
        f"database share of a restart (open + WAL replay + state load): median "
        f"{report['storage_start_median_s']} s, max {report['storage_start_max_s']} s\n"
        f"metrics equal the full recompute after every restart: {report['all_equal']}\n"
        f"every acknowledged delivery stored exactly once: {not final}\n"
        f"RESULT: {'OK' if report['ok'] else 'FAILED'}"
    )
    if not args.keep and report["ok"]:
        shutil.rmtree(workdir, ignore_errors=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cycles", type=int, default=20, help="kill -9 cycles (default 20)")
    parser.add_argument("--threads", type=int, default=8, help="sending threads (default 8)")
    parser.add_argument(
        "--seed-events",
        type=int,
        default=1_000_000,
        help="stored events written before the soak, so restarts carry history (default 1M)",
    )
    parser.add_argument("--kill-min", type=int, default=100, help="fewest acks before a kill")
    parser.add_argument("--kill-max", type=int, default=800, help="most acks before a kill")
    parser.add_argument("--duplicates", type=int, default=5, help="acked deliveries re-sent")
    parser.add_argument("--cycle-timeout", type=float, default=60.0, help="seconds per cycle")
    parser.add_argument("--seed", type=int, default=7, help="random seed of the kill points")
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
