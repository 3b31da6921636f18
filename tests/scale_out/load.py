"""Senders that behave like a store's webhook client: fresh signed orders from several threads,
spread over the intake replicas; a failed attempt (connection lost, 503) is retried with the same
delivery id on the next replica, as platforms retry."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

from tests.e2e.server import http_client
from tests.e2e.test_crash_recovery import Sent, next_order_id, post

THREADS = 4
JOIN_TIMEOUT = 15.0
#: Most seconds a sender keeps retrying an interrupted delivery (less than JOIN_TIMEOUT).
RETRY_FOR = 10.0


@dataclass
class SpreadLoad:
    urls: list[str]
    label: str
    acked: dict[str, Sent] = field(default_factory=dict)
    sent: list[Sent] = field(default_factory=list)  # every delivery tried
    #: Deliveries whose first attempt failed without an answer (the replica died mid-request).
    interrupted: set[str] = field(default_factory=set)
    answers: Counter[str] = field(default_factory=Counter)
    unavailable_at: list[float] = field(default_factory=list)  # monotonic times of 503s
    acked_at: list[float] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> SpreadLoad:
        for index in range(THREADS):
            thread = threading.Thread(target=self._run, args=(index,), daemon=True)
            self.threads.append(thread)
            thread.start()
        return self

    def _run(self, index: int) -> None:
        clients = [http_client(url, timeout=10.0) for url in self.urls]
        try:
            n = 0
            while not self.stop.is_set():
                n += 1
                self._deliver(clients, index, Sent(f"{self.label}-t{index}-{n}", next_order_id()))
        finally:
            for client in clients:
                client.close()

    def _deliver(self, clients: list[httpx.Client], index: int, sent: Sent) -> None:
        with self.lock:
            self.sent.append(sent)
        attempt = 0
        deadline = time.monotonic() + RETRY_FOR
        # A delivery whose request was interrupted is retried until acknowledged even after the
        # stop (as a platform retries), for at most RETRY_FOR seconds.
        while not self.stop.is_set() or (
            sent.delivery_id in self.interrupted and time.monotonic() < deadline
        ):
            client = clients[(index + attempt) % len(clients)]
            attempt += 1
            try:
                response = post(client, sent)
            except httpx.TransportError:
                with self.lock:
                    self.answers["connection lost"] += 1
                    self.interrupted.add(sent.delivery_id)
                time.sleep(0.05)
                continue
            status = response.json().get("status") if response.is_success else None
            with self.lock:
                if response.status_code == 503:
                    self.answers["503"] += 1
                    self.unavailable_at.append(time.monotonic())
                elif status in ("stored", "duplicate"):
                    self.answers[str(status)] += 1
                    self.acked.setdefault(sent.delivery_id, sent)
                    self.acked_at.append(time.monotonic())
                    return
                else:
                    self.unexpected.append(f"{response.status_code} {response.text[:200]}")
                    return
            time.sleep(0.1)

    def acked_count(self) -> int:
        with self.lock:
            return len(self.acked)

    def wait_acked(self, count: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.acked_count() < count:
            assert not self.unexpected, self.unexpected[:3]
            assert time.monotonic() < deadline, f"only {self.acked_count()} acknowledged"
            time.sleep(0.02)

    def join(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(JOIN_TIMEOUT)
        assert not any(thread.is_alive() for thread in self.threads), "load threads hung"
        assert not self.unexpected, self.unexpected[:3]
