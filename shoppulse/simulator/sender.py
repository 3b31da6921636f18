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
from ingest.providers.base import Provider
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
    sending = _Sending(
        secrets,
        concurrency=concurrency,
        pace=pace,
        stop=stop or asyncio.Event(),
        max_retry_after=max_retry_after,
        max_503_retries=max_503_retries,
    )
    clients = _clients(url, concurrency, transport, timeout)
    ticker = None
    if progress is not None:
        ticker = asyncio.create_task(sending.tick(progress, progress_interval))
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(sending.produce(deliveries))
            for client in clients:
                group.create_task(sending.work(client))
    finally:
        if ticker is not None:
            ticker.cancel()
        sending.report.elapsed = sending.elapsed()
        for client in clients:
            await client.aclose()
    if progress is not None:
        progress(sending.report)
    return sending.report


def _clients(
    url: str, concurrency: int, transport: httpx.AsyncBaseTransport | None, timeout: float
) -> list[httpx.AsyncClient]:
    """`concurrency` clients of one keep-alive connection each, spread over the base URLs.

    One connection per client: httpcore's pool scans all of its connections on every request,
    which at 32 connections doubled the sender's CPU per request. Together the clients are the
    pool of `concurrency` connections.
    """
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    bases = [base.strip() for base in url.split(",") if base.strip()] or [DEFAULT_URL]
    return [
        httpx.AsyncClient(
            base_url=bases[n % len(bases)], transport=transport, limits=limits, timeout=timeout
        )
        for n in range(concurrency)
    ]


def _signed_headers(provider: Provider, delivery: SimDelivery, secret: str) -> dict[str, str]:
    """The headers Shopify sends with `delivery`, signed with `secret`."""
    headers = provider.sign(
        delivery.body,
        secret,
        topic=delivery.topic,
        delivery_id=delivery.delivery_id,
        timestamp=int(delivery.sent_at.timestamp()),
    )
    headers["X-Shopify-Shop-Domain"] = f"{delivery.source}.myshopify.com"
    headers["X-Shopify-API-Version"] = SHOPIFY_API_VERSION
    return headers


class _Sending:
    """One run of `send`: a producer queues signed deliveries on time, workers post them (one
    client each), and both count into `report`."""

    def __init__(
        self,
        secrets: Mapping[str, str],
        *,
        concurrency: int,
        pace: bool,
        stop: asyncio.Event,
        max_retry_after: float,
        max_503_retries: int,
    ) -> None:
        self.secrets = secrets
        self.concurrency = concurrency
        self.pace = pace
        self.stop = stop
        self.max_retry_after = max_retry_after
        self.max_503_retries = max_503_retries
        self.provider = get_provider("shopify")
        self.report = SendReport()
        self.queue: asyncio.Queue[_Work | None] = asyncio.Queue(maxsize=concurrency * 2)
        #: Answered events of deliveries that will be retried, by (source, delivery id).
        self.originals: dict[tuple[str, str], asyncio.Event] = {}
        self.sample_rng = random.Random(0)
        self.loop = asyncio.get_running_loop()
        self.started = self.loop.time()

    def elapsed(self) -> float:
        return self.loop.time() - self.started

    async def produce(self, deliveries: Iterable[SimDelivery]) -> None:
        """Queue each delivery when it is due, until the end or `stop`; then end the workers."""
        for delivery in deliveries:
            if self.stop.is_set() or not await self._until_due(delivery):
                break
            await self.queue.put(self._work(delivery))
        for _ in range(self.concurrency):  # on failure the task group cancels the workers instead
            await self.queue.put(None)

    async def _until_due(self, delivery: SimDelivery) -> bool:
        """Wait until `delivery` is due (at once without pacing); False if `stop` came first."""
        wait = self.started + delivery.offset - self.loop.time() if self.pace else 0.0
        if wait > 0.05:
            try:
                await asyncio.wait_for(self.stop.wait(), wait)
                return False
            except TimeoutError:
                pass
        elif wait > 0:
            await asyncio.sleep(wait)
        return True

    def _work(self, delivery: SimDelivery) -> _Work:
        """`delivery` signed, with the original it must wait for (a retry) and the event it sets
        once answered (a delivery that will be retried)."""
        headers = _signed_headers(self.provider, delivery, self.secrets.get(delivery.source, ""))
        key = (delivery.source, delivery.delivery_id)
        before = self.originals.pop(key, None) if delivery.kind == "retry" else None
        done = None
        if delivery.will_retry:
            done = self.originals[key] = asyncio.Event()
        return delivery, headers, before, done

    async def work(self, client: httpx.AsyncClient) -> None:
        """Post queued deliveries on `client` until the producer says there are no more."""
        while (item := await self.queue.get()) is not None:
            delivery, headers, before, done = item
            try:
                if before is not None:
                    await before.wait()
                await self._post(client, delivery, headers)
                self.report.sent += 1
            finally:
                if done is not None:
                    done.set()

    async def _post(
        self, client: httpx.AsyncClient, delivery: SimDelivery, headers: dict[str, str]
    ) -> None:
        """Post `delivery` (again after each 503, up to the limit) and count its answer."""
        attempts = 0
        while True:
            begun = time.perf_counter()
            try:
                response = await client.post(
                    f"/webhooks/{delivery.source}", content=delivery.body, headers=headers
                )
            except httpx.HTTPError as exc:
                self.report.errors += 1
                what = f"{type(exc).__name__}: {exc}"
                self.report._fail(f"{delivery.topic} {delivery.delivery_id}: {what}")
                return
            self.report._observe(time.perf_counter() - begun, self.sample_rng)
            if response.status_code == 503 and attempts < self.max_503_retries:
                attempts += 1
                self.report.retried_503 += 1
                await asyncio.sleep(_retry_after(response, self.max_retry_after))
                continue
            _count_answer(self.report, delivery, response)
            return

    async def tick(self, progress: Callable[[SendReport], None], interval: float) -> None:
        """Hand `progress` the report every `interval` seconds (until cancelled)."""
        while True:
            await asyncio.sleep(interval)
            self.report.elapsed = self.elapsed()
            progress(self.report)


def _count_answer(report: SendReport, delivery: SimDelivery, response: httpx.Response) -> None:
    """Count the final answer to `delivery`, and whether it is the one it should have got."""
    status = response.status_code
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


def _status_of(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    status = body.get("status") if isinstance(body, dict) else None
    return status if isinstance(status, str) else None
