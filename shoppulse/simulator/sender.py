"""`send`: posts simulated deliveries to a running service, signed, paced and counted."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import httpx

from ingest.providers import get_provider
from shoppulse.simulator.model import (
    DEFAULT_URL,
    EXPECTED_OUTCOME,
    SHOPIFY_API_VERSION,
    SimDelivery,
)


@dataclass(slots=True)
class SendReport:
    """What the sender did and what it was answered."""

    sent: int = 0  #: deliveries finished (answered, or given up on)
    stored: int = 0  #: 200 stored
    duplicate: int = 0  #: 200 duplicate
    quarantined: int = 0  #: 202 quarantined
    client_errors: int = 0  #: 4xx
    server_errors: int = 0  #: 5xx (503 only once retries ran out)
    errors: int = 0  #: connection errors and timeouts
    retried_503: int = 0  #: 503 answers that were retried after Retry-After
    unexpected: int = 0  #: 2xx answers other than the expected one (stored/duplicate/quarantined)
    status_codes: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)  #: the first few failures, described
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)  #: a sample of request seconds
    _seen_latencies: int = 0

    @property
    def failed(self) -> int:
        return self.client_errors + self.server_errors + self.errors

    @property
    def throughput(self) -> float:
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0

    def latency(self, quantile: float) -> float | None:
        """A latency quantile in seconds over the sampled requests (None before any)."""
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(quantile * len(ordered)))]

    def _observe(self, seconds: float, rng: random.Random) -> None:
        self._seen_latencies += 1
        if len(self.latencies) < _LATENCY_SAMPLE:
            self.latencies.append(seconds)
        else:
            slot = rng.randrange(self._seen_latencies)
            if slot < _LATENCY_SAMPLE:
                self.latencies[slot] = seconds

    def _fail(self, text: str) -> None:
        if len(self.failures) < 10:
            self.failures.append(text)


_LATENCY_SAMPLE = 100_000
_Work = tuple[SimDelivery, dict[str, str], asyncio.Event | None, asyncio.Event | None]


def _retry_after(response: httpx.Response, ceiling: float) -> float:
    value = response.headers.get("retry-after", "")
    seconds = float(value) if value.strip().isdigit() else 1.0
    return min(max(seconds, 0.0), ceiling)


async def send(
    deliveries: Iterable[SimDelivery],
    *,
    secrets: Mapping[str, str],
    url: str = DEFAULT_URL,
    concurrency: int = 16,
    pace: bool = True,
    stop: asyncio.Event | None = None,
    progress: Callable[[SendReport], None] | None = None,
    progress_interval: float = 0.2,
    transport: httpx.AsyncBaseTransport | None = None,
    timeout: float = 10.0,
    max_retry_after: float = 30.0,
    max_503_retries: int = 20,
) -> SendReport:
    """POST every delivery to `url`/webhooks/<source>, signed with `secrets[source]`.

    Several base URLs, comma-separated (intake replicas), share the connections round-robin.

    Paced so that a delivery goes out `offset` seconds after the start (`pace=False`: as fast
    as the server answers). A retry waits until its original has been answered, as a real
    platform retries only after the previous attempt. 503 answers are retried after their
    Retry-After (capped by `max_retry_after`). Setting `stop` stops taking new deliveries;
    those already queued are still sent.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    provider = get_provider("shopify")
    report = SendReport()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[_Work | None] = asyncio.Queue(maxsize=concurrency * 2)
    originals: dict[tuple[str, str], asyncio.Event] = {}
    sample_rng = random.Random(0)
    started = loop.time()

    async def produce() -> None:
        for delivery in deliveries:
            if stop.is_set():
                break
            wait = started + delivery.offset - loop.time() if pace else 0.0
            if wait > 0.05:
                try:
                    await asyncio.wait_for(stop.wait(), wait)
                    break
                except TimeoutError:
                    pass
            elif wait > 0:
                await asyncio.sleep(wait)
            headers = provider.sign(
                delivery.body,
                secrets.get(delivery.source, ""),
                topic=delivery.topic,
                delivery_id=delivery.delivery_id,
                timestamp=int(delivery.sent_at.timestamp()),
            )
            headers["X-Shopify-Shop-Domain"] = f"{delivery.source}.myshopify.com"
            headers["X-Shopify-API-Version"] = SHOPIFY_API_VERSION
            key = (delivery.source, delivery.delivery_id)
            before = originals.pop(key, None) if delivery.kind == "retry" else None
            done = None
            if delivery.will_retry:
                done = originals[key] = asyncio.Event()
            await queue.put((delivery, headers, before, done))
        for _ in range(concurrency):  # on failure the task group cancels the workers instead
            await queue.put(None)

    async def post(
        client: httpx.AsyncClient, delivery: SimDelivery, headers: dict[str, str]
    ) -> None:
        attempts = 0
        while True:
            begun = time.perf_counter()
            try:
                response = await client.post(
                    f"/webhooks/{delivery.source}", content=delivery.body, headers=headers
                )
            except httpx.HTTPError as exc:
                report.errors += 1
                what = f"{type(exc).__name__}: {exc}"
                report._fail(f"{delivery.topic} {delivery.delivery_id}: {what}")
                return
            report._observe(time.perf_counter() - begun, sample_rng)
            status = response.status_code
            if status == 503 and attempts < max_503_retries:
                attempts += 1
                report.retried_503 += 1
                await asyncio.sleep(_retry_after(response, max_retry_after))
                continue
            report.status_codes[status] += 1
            outcome: str
            if status == 202:
                outcome = "quarantined"
            elif 200 <= status < 300:
                outcome = "duplicate" if _status_of(response) == "duplicate" else "stored"
            else:
                outcome = "client_error" if status < 500 else "server_error"
                report._fail(
                    f"{delivery.topic} {delivery.delivery_id}: HTTP {status} {response.text[:200]}"
                )
            if outcome == "stored":
                report.stored += 1
            elif outcome == "duplicate":
                report.duplicate += 1
            elif outcome == "quarantined":
                report.quarantined += 1
            elif outcome == "client_error":
                report.client_errors += 1
            else:
                report.server_errors += 1
            if outcome in EXPECTED_OUTCOME.values() and outcome != delivery.expected:
                report.unexpected += 1
            return

    async def work(client: httpx.AsyncClient) -> None:
        while (item := await queue.get()) is not None:
            delivery, headers, before, done = item
            try:
                if before is not None:
                    await before.wait()
                await post(client, delivery, headers)
                report.sent += 1
            finally:
                if done is not None:
                    done.set()

    async def tick() -> None:
        assert progress is not None
        while True:
            await asyncio.sleep(progress_interval)
            report.elapsed = loop.time() - started
            progress(report)

    # One keep-alive connection per worker, each in its own client: httpcore's pool scans all of
    # its connections on every request, which at 32 connections doubled the sender's CPU per
    # request. Together the clients are the pool of `concurrency` connections.
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    bases = [base.strip() for base in url.split(",") if base.strip()] or [DEFAULT_URL]
    clients = [
        httpx.AsyncClient(
            base_url=bases[n % len(bases)], transport=transport, limits=limits, timeout=timeout
        )
        for n in range(concurrency)
    ]
    ticker = asyncio.create_task(tick()) if progress is not None else None
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(produce())
            for client in clients:
                group.create_task(work(client))
    finally:
        if ticker is not None:
            ticker.cancel()
        report.elapsed = loop.time() - started
        for client in clients:
            await client.aclose()
    if progress is not None:
        progress(report)
    return report


def _status_of(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    status = body.get("status") if isinstance(body, dict) else None
    return status if isinstance(status, str) else None
