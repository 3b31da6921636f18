"""kill -9 under load: every acknowledged delivery survives, exactly once, with its event.

A real `shoppulse serve` on 127.0.0.1 takes signed Shopify order deliveries from several threads
and is SIGKILLed while they run, three times. After each crash the database file itself must
hold every delivery that got a 2xx; after each restart the deliveries that were in flight are
retried (as Shopify retries) and some acknowledged ones are re-sent and must come back as
duplicates, stored once.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from ingest.providers import get_provider
from tests.conftest import SECRET, fixture_json
from tests.e2e.server import CLEAN_EXIT, ServiceFactory, ServiceProcess, http_client

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

SOURCE = "acme"
TOPIC = "orders/create"
SHOPIFY = get_provider("shopify")
ORDER: dict[str, Any] = fixture_json("shopify", "orders_create.json")

THREADS = 8
#: Each round kills the service after this many acknowledged deliveries or this many seconds of
#: load, whichever comes first (different points in the run; bounded on a busy machine).
KILL_AFTER = ((150, 1.0), (400, 2.0), (250, 1.5))
#: Fewer acknowledged deliveries than this before the kill means the service did not work.
MIN_ACKED = 10
FIRST_ACK_TIMEOUT = 20.0
DUPLICATES_PER_ROUND = 5
JOIN_TIMEOUT = 10.0


@dataclass(frozen=True)
class Sent:
    delivery_id: str
    order_id: int


def order_body(order_id: int) -> bytes:
    """The real orders/create sample with its own order id (a distinct order per delivery)."""
    order = dict(ORDER)
    order["id"] = order_id
    order["admin_graphql_api_id"] = f"gid://shopify/Order/{order_id}"
    return json.dumps(order, indent=2).encode()


def post(client: httpx.Client, sent: Sent) -> httpx.Response:
    body = order_body(sent.order_id)
    headers = SHOPIFY.sign(
        body, SECRET, topic=TOPIC, delivery_id=sent.delivery_id, timestamp=int(time.time())
    )
    return client.post(f"/webhooks/{SOURCE}", content=body, headers=headers)


_order_ids = itertools.count(5_000_000_000_001)
_order_ids_lock = threading.Lock()


def next_order_id() -> int:
    with _order_ids_lock:
        return next(_order_ids)


@dataclass
class Load:
    """Threads that post fresh deliveries until their connection breaks or `stop` is set."""

    base_url: str
    label: str
    acked: list[Sent] = field(default_factory=list)
    unacked: list[Sent] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for index in range(THREADS):
            thread = threading.Thread(target=self._run, args=(index,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _run(self, index: int) -> None:
        with http_client(self.base_url, timeout=5.0) as client:
            for n in itertools.count(1):
                if self.stop.is_set():
                    return
                sent = Sent(f"{self.label}-t{index}-{n}", next_order_id())
                try:
                    response = post(client, sent)
                except httpx.TransportError:
                    with self.lock:
                        self.unacked.append(sent)
                    return
                with self.lock:
                    if response.is_success and response.json().get("status") == "stored":
                        self.acked.append(sent)
                    else:
                        self.unexpected.append(f"{response.status_code} {response.text[:200]}")
                        return

    def acked_count(self) -> int:
        with self.lock:
            return len(self.acked)

    def join(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(JOIN_TIMEOUT)
        assert not any(thread.is_alive() for thread in self.threads), "load threads hung"


def run_until_killed(service: ServiceProcess, label: str, acked: int, seconds: float) -> Load:
    load = Load(service.base_url, label)
    load.start()
    # The clock starts at the first acknowledgement (the first batch pays for warm-up).
    first_ack_by = time.monotonic() + FIRST_ACK_TIMEOUT
    deadline: float | None = None
    try:
        while load.acked_count() < acked and not load.unexpected:
            now = time.monotonic()
            if deadline is None and load.acked_count():
                deadline = now + seconds
            if (deadline is not None and now > deadline) or now > first_ack_by:
                break
            time.sleep(0.005)
    finally:
        service.kill()
        load.join()
    assert not load.unexpected, load.unexpected[:5]
    assert len(load.acked) >= MIN_ACKED, f"only {len(load.acked)} acknowledged in {seconds} s"
    # The threads were still sending when the process died: their next request failed.
    assert load.unacked, "the kill did not interrupt the load"
    return load


def wal_state(db: Path) -> tuple[int, int] | None:
    wal = db.with_name(db.name + ".wal")
    return (wal.stat().st_size, wal.stat().st_mtime_ns) if wal.exists() else None


def stored(db: Path) -> dict[str, tuple[int, int, str, list[str]]]:
    """delivery_id -> (rows with that id, event_count, status, entity ids of its events)."""
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(
            """
            SELECT d.delivery_id, count(*) OVER (PARTITION BY d.delivery_id), d.event_count,
                   d.status,
                   list(e.entity_id ORDER BY e.event_seq) FILTER (WHERE e.entity_id IS NOT NULL)
            FROM deliveries d LEFT JOIN events e ON e.delivery_seq = d.delivery_seq
            WHERE d.source = ?
            GROUP BY d.delivery_id, d.delivery_seq, d.event_count, d.status
            """,
            [SOURCE],
        ).fetchall()
    return {row[0]: (int(row[1]), int(row[2]), row[3], list(row[4] or [])) for row in rows}


def assert_stored_once(db: Path, deliveries: Iterable[Sent]) -> dict[str, Any]:
    rows = stored(db)
    for sent in deliveries:
        assert sent.delivery_id in rows, f"acknowledged delivery {sent.delivery_id} was lost"
        copies, event_count, status, entity_ids = rows[sent.delivery_id]
        assert copies == 1, f"{sent.delivery_id} is stored {copies} times"
        assert (status, event_count) == ("accepted", 1)
        assert entity_ids == [str(sent.order_id)], f"{sent.delivery_id} has events {entity_ids}"
    return rows


def test_acknowledged_deliveries_survive_sigkill(service_factory: ServiceFactory) -> None:
    # A 1 MB checkpoint threshold checkpoints every ~70 deliveries, so kills also land during
    # and right after checkpoints, not only between them.
    service = service_factory(env={"SHOPPULSE_CHECKPOINT_WAL_MB": "1"}).start()
    acked: list[Sent] = []
    sent_ids: set[str] = set()
    duplicate_answers = 0

    with service.client() as client:
        for round_no, (kill_acked, kill_seconds) in enumerate(KILL_AFTER, start=1):
            load = run_until_killed(service, f"r{round_no}", kill_acked, kill_seconds)
            acked += load.acked
            sent_ids |= {s.delivery_id for s in load.acked + load.unacked}

            # The file as the crash left it already holds every acknowledged delivery. (A
            # read-only look replays the WAL in memory only: the restart still recovers from
            # exactly what the crash left.)
            wal_after_crash = wal_state(service.db)
            assert_stored_once(service.db, acked)
            assert wal_state(service.db) == wal_after_crash

            service.start()
            # The sender retries what it got no answer for: stored now, or found already stored.
            for sent in load.unacked:
                response = post(client, sent)
                assert response.status_code == 200, response.text
                body = response.json()
                assert body["status"] in {"stored", "duplicate"}, body
                duplicate_answers += body["status"] == "duplicate"
                acked.append(sent)
            # Acknowledged deliveries sent again are duplicates, not stored twice.
            for sent in load.acked[:: max(1, len(load.acked) // DUPLICATES_PER_ROUND)][
                :DUPLICATES_PER_ROUND
            ]:
                response = post(client, sent)
                assert response.status_code == 200, response.text
                assert response.json() == {
                    "status": "duplicate",
                    "source": SOURCE,
                    "delivery_id": sent.delivery_id,
                }
                duplicate_answers += 1

    assert service.stop() in CLEAN_EXIT, service.log_tail()
    assert service.log_problems() == []
    # The graceful stop closed the database: everything is checkpointed into the file.
    assert not service.db.with_name(service.db.name + ".wal").exists()

    rows = assert_stored_once(service.db, acked)
    # Every delivery ever sent was acknowledged in the end, and nothing else is stored.
    assert {s.delivery_id for s in acked} == sent_ids == set(rows)
    assert len(acked) >= MIN_ACKED * len(KILL_AFTER)
    with duckdb.connect(str(service.db), read_only=True) as con:
        [(events, distinct_seqs)] = con.execute(
            "SELECT count(*), count(DISTINCT event_seq) FROM events"
        ).fetchall()
        [(duplicates,)] = con.execute(
            "SELECT coalesce(sum(count), 0) FROM ingest_counts "
            "WHERE source = ? AND outcome = 'duplicate'",
            [SOURCE],
        ).fetchall()
    assert events == distinct_seqs == len(sent_ids)
    # Each duplicate answer was counted once, durably, with the batch that found it.
    assert int(duplicates) == duplicate_answers
