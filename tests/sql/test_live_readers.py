"""Analysts read while webhooks arrive: a real `shoppulse serve`, real reader processes.

Readers use nothing but the stock duckdb package on the documented catalog file. They must never
see a lock error, their counts only grow, and once ingestion stops the views agree with
/api/v1/metrics. A reader that holds a query open does not slow ingestion down.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from ingest.providers import get_provider
from shoppulse.publish.catalog import catalog_path
from tests.conftest import SECRET, fixture_json
from tests.e2e.server import ServiceProcess, http_client
from tests.helpers.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

SHOPIFY = get_provider("shopify")
ORDER: dict[str, Any] = fixture_json("shopify", "orders_create.json")
EVERYTHING = {"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"}
FAST_PUBLISH = {"SHOPPULSE_PUBLISH_INTERVAL_SECONDS": "0.3"}

READER = textwrap.dedent(
    """
    import json, sys, time
    import duckdb

    catalog, seconds = sys.argv[1], float(sys.argv[2])
    deadline = time.monotonic() + seconds
    seen = {"events": -1, "orders": -1}
    report = {"reads": 0, "errors": [], "shrank": []}
    while time.monotonic() < deadline:
        try:
            con = duckdb.connect(catalog, read_only=True)
            try:
                now = {
                    "events": con.execute("SELECT count(*) FROM events").fetchone()[0],
                    "orders": con.execute(
                        "SELECT coalesce(sum(orders), 0) FROM sales_by_day"
                    ).fetchone()[0],
                }
            finally:
                con.close()
        except Exception as exc:
            report["errors"].append(repr(exc)[:300])
            continue
        for name, value in now.items():
            if value < seen[name]:
                report["shrank"].append([name, seen[name], value])
            seen[name] = value
        report["reads"] += 1
    report["last"] = seen
    print(json.dumps(report))
    """
)


def order_body(order_id: int) -> bytes:
    order = dict(ORDER)  # the sample is a cancelled test order: make it one that counts
    order.update(id=order_id, test=False, cancelled_at=None)
    return json.dumps(order).encode()


_ids = itertools.count(7_000_000_000_001)
_ids_lock = threading.Lock()


@dataclass
class Sender:
    """Threads posting distinct signed orders until stopped; records acknowledgement latency."""

    base_url: str
    threads: int = 2
    acked: int = 0
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    running: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for _ in range(self.threads):
            thread = threading.Thread(target=self._run, daemon=True)
            thread.start()
            self.running.append(thread)

    def _run(self) -> None:
        with http_client(self.base_url, timeout=10.0) as client:
            while not self.stop.is_set():
                with _ids_lock:
                    order_id = next(_ids)
                body = order_body(order_id)
                headers = SHOPIFY.sign(
                    body,
                    SECRET,
                    topic="orders/create",
                    delivery_id=f"d-{order_id}",
                    timestamp=int(time.time()),
                )
                started = time.monotonic()
                response = client.post("/webhooks/acme", content=body, headers=headers)
                elapsed = time.monotonic() - started
                with self.lock:
                    if response.status_code == 200:
                        self.acked += 1
                        self.latencies.append(elapsed)
                    else:
                        self.failures.append(f"{response.status_code} {response.text[:200]}")
                time.sleep(0.01)

    def join(self) -> None:
        self.stop.set()
        for thread in self.running:
            thread.join(15)


def view(catalog: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(catalog), read_only=True)
    try:
        return con.sql(sql).fetchall()
    finally:
        con.close()


def test_readers_in_other_processes_while_deliveries_stream_in(tmp_path: Path) -> None:
    service = ServiceProcess.for_sources(tmp_path, {"acme": ("shopify", SECRET)}, env=FAST_PUBLISH)
    with service:
        catalog = catalog_path(service.db)
        wait_for(catalog.exists, "the first catalog", timeout=20)
        sender = Sender(service.base_url)
        sender.start()
        readers = [
            subprocess.Popen(
                [sys.executable, "-c", READER, str(catalog), "6"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(3)
        ]
        try:
            outputs = [reader.communicate(timeout=60) for reader in readers]
        finally:
            sender.join()
            for reader in readers:
                reader.kill()
        assert not sender.failures, sender.failures[:3]
        assert sender.acked > 20
        reports = [json.loads(out) for out, _ in outputs]
        for report in reports:
            assert report["errors"] == [], report["errors"][:3]
            assert report["shrank"] == []
            assert report["reads"] > 3

        # Ingestion stopped: the views catch up and agree with the API.
        def caught_up() -> bool:
            [(shown,)] = view(catalog, "SELECT count(*) FROM events")
            return int(shown) == sender.acked

        wait_for(caught_up, "the views to show every acknowledged delivery", timeout=20)
        with service.client() as client:

            def api() -> dict[str, Any]:
                response = client.get("/api/v1/metrics", params=EVERYTHING)
                assert response.status_code == 200
                return dict(response.json())

            wait_for(lambda: api()["orders"] == sender.acked, "the fold", timeout=20)
            figures = api()
        wait_for(
            lambda: (
                view(catalog, "SELECT coalesce(sum(orders), 0) FROM sales_by_day")[0][0]
                == figures["orders"]
            ),
            "the published aggregates",
            timeout=20,
        )
        orders, gross, discounts = view(
            catalog, "SELECT sum(orders), sum(gross_sales), sum(discounts) FROM sales_by_hour"
        )[0]
        assert orders == figures["orders"] == sender.acked
        assert gross == Decimal(figures["gross_sales"])
        assert discounts == Decimal(figures["discounts"])
        assert view(catalog, "SELECT count(*) FROM orders WHERE counted")[0][0] == sender.acked


HOLDER = textwrap.dedent(
    """
    import sys, time
    import duckdb

    con = duckdb.connect(sys.argv[1], read_only=True)
    con.execute("SET enable_progress_bar = false")
    result = con.execute("SELECT event_seq FROM events ORDER BY event_seq")
    first = result.fetchmany(1)
    print("open", flush=True)
    time.sleep(float(sys.argv[2]))  # the query stays open while the service goes on
    rest = result.fetchall()
    print(len(first) + len(rest), flush=True)
    """
)


def test_a_reader_holding_a_query_open_does_not_stall_ingestion(tmp_path: Path) -> None:
    service = ServiceProcess.for_sources(tmp_path, {"acme": ("shopify", SECRET)}, env=FAST_PUBLISH)
    with service:
        catalog = catalog_path(service.db)
        sender = Sender(service.base_url, threads=1)
        sender.start()
        wait_for(lambda: sender.acked >= 10, "the first deliveries", timeout=20)
        wait_for(
            lambda: catalog.exists() and view(catalog, "SELECT count(*) FROM events")[0][0] >= 10,
            "the first published events",
            timeout=20,
        )
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(catalog), "5"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "open"
            held_at = sender.acked
            with sender.lock:
                sender.latencies.clear()
            time.sleep(4)  # the query is open all this time
            with sender.lock:
                during = list(sender.latencies)
            # Ingestion went on, and new readers see it while the old query is still open.
            assert len(during) >= 5  # (a stall would leave none, or multi-second waits)
            assert sorted(during)[int(len(during) * 0.95)] < 2.0
            assert view(catalog, "SELECT count(*) FROM events")[0][0] > held_at
            out, errors = holder.communicate(timeout=30)
        finally:
            sender.join()
            holder.kill()
        assert holder.returncode == 0, errors
        # The open query finished on its own (older) snapshot; newer readers see more.
        held_rows = int(out.strip().splitlines()[-1])
        assert 10 <= held_rows < view(catalog, "SELECT count(*) FROM events")[0][0]
        assert not sender.failures
