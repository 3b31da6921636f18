"""Overload: beyond `max_in_flight` requests at once the service answers 503 with Retry-After at
once (before reading the body), acknowledged deliveries stay durable, memory stays bounded, and
throughput comes back when the load drops. bench/overload.py is the long version of this."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import duckdb
import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from ingest.providers import get_provider
from ingest.sources import Source
from shoppulse.service import create_app
from shoppulse.settings import Settings
from tests.conftest import SECRET, FrozenClock, fixture_json, signed_post
from tests.e2e.server import ServiceProcess, http_client
from tests.helpers.app import service_of
from tests.helpers.processes import rss_mb

ORDER: dict[str, Any] = fixture_json("shopify", "orders_create.json")
SHOPIFY = get_provider("shopify")


def order(number: int) -> bytes:
    return orjson.dumps(dict(ORDER, id=7_500_000 + number))


def test_requests_beyond_max_in_flight_get_503_at_once(
    settings: Settings, sources: dict[str, Source], clock: FrozenClock
) -> None:
    tight = settings.model_copy(update={"max_in_flight": 3, "retry_after_seconds": 7})
    with TestClient(create_app(tight, sources, clock=clock)) as client:
        writer = service_of(client).writer
        release, holding = threading.Event(), threading.Event()

        def hold(_: object) -> None:
            holding.set()
            release.wait(10)

        writer.run_job(hold)  # the writer is busy: the first requests wait for it
        assert holding.wait(5)
        answers: dict[int, Any] = {}

        def send(number: int) -> None:
            answers[number] = signed_post(
                client, "acme", "shopify", order(number), topic="orders/create",
                delivery_id=f"o{number}",
            )  # fmt: skip

        waiting = [threading.Thread(target=send, args=(n,)) for n in range(3)]
        for thread in waiting:
            thread.start()
        deadline = time.monotonic() + 5
        while service_of(client).intake.in_flight < 3:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        started = time.perf_counter()
        for number in range(3, 6):
            send(number)  # answered at once although the writer is still held
        assert time.perf_counter() - started < 2.0
        for number in range(3, 6):
            response = answers[number]
            assert response.status_code == 503
            assert response.headers["retry-after"] == "7"
            error = response.json()["error"]
            assert error["code"] == "unavailable" and error["message"].startswith("overloaded")
        release.set()
        for thread in waiting:
            thread.join(10)
        assert [answers[n].status_code for n in range(3)] == [200, 200, 200]
        assert (
            signed_post(
                client, "acme", "shopify", order(9), topic="orders/create", delivery_id="after"
            ).json()["status"]
            == "stored"
        )
        stats = client.get("/api/v1/ingest/stats").json()["sources"]["acme"]
        assert stats["rejected_by_reason"]["unavailable"] == 3
    with duckdb.connect(str(settings.db_path), read_only=True) as con:
        stored = {row[0] for row in con.execute("SELECT delivery_id FROM deliveries").fetchall()}
    assert stored == {"o0", "o1", "o2", "after"}


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_real_server_sheds_load_and_recovers(
    real_service: ServiceProcess, acknowledged: set[str]
) -> None:
    """40 senders against max_in_flight = 8: some get 503 at once, memory stays flat, and when
    the senders stop every delivery is acknowledged promptly again. The package's fixture checks
    at the end that every acknowledged delivery is stored."""
    service = real_service
    assert service.process is not None
    pid = service.process.pid
    baseline = rss_mb(pid)
    statuses: Counter[int] = Counter()
    retry_after: set[str] = set()
    lock = threading.Lock()
    stop = threading.Event()
    numbers = iter(range(10**9))

    def sender() -> None:
        with http_client(service.base_url, timeout=30) as client:
            while not stop.is_set():
                with lock:
                    number = next(numbers)
                body = order(number)
                headers = SHOPIFY.sign(
                    body, SECRET, topic="orders/create", delivery_id=f"l{number}",
                    timestamp=int(time.time()),
                )  # fmt: skip
                try:
                    response = client.post("/webhooks/acme", content=body, headers=headers)
                except httpx.TransportError:
                    continue
                with lock:
                    statuses[response.status_code] += 1
                    if response.status_code == 200:
                        acknowledged.add(f"l{number}")
                    elif response.status_code == 503:
                        retry_after.add(response.headers.get("retry-after", ""))

    threads = [threading.Thread(target=sender) for _ in range(40)]
    peak = baseline
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        peak = max(peak, rss_mb(pid))
        time.sleep(0.1)
    stop.set()
    for thread in threads:
        thread.join(30)
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[503] > 0 and statuses[200] > 0, statuses
    assert retry_after == {"5"}
    assert peak - baseline < 150, (baseline, peak)

    # The load is gone: every delivery is acknowledged again, promptly.
    with service.client() as client:
        for number in range(20):
            body = order(10**8 + number)
            headers = SHOPIFY.sign(
                body, SECRET, topic="orders/create", delivery_id=f"calm{number}",
                timestamp=int(time.time()),
            )  # fmt: skip
            started = time.perf_counter()
            response = client.post("/webhooks/acme", content=body, headers=headers)
            assert response.status_code == 200, response.text
            assert time.perf_counter() - started < 1.0
            acknowledged.add(f"calm{number}")
