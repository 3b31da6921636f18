"""A small, fast HTTP/1.1 load generator for loopback benchmarks.

It drives one server over keep-alive connections with pre-serialized requests, on asyncio
(uvloop when installed), so that on a 2-core machine it costs far less CPU than the server it
measures. Two ways to drive:

- closed loop (`run_closed`): N connections, each sends its next request as soon as the previous
  one is answered. Measures the most a server does at concurrency N.
- open loop (`run_open`): requests start on a fixed schedule (R per second) whatever the server
  does, over as many connections as needed. Latency counts from the scheduled start, so a stall
  shows up in every request it delays (no coordinated omission).

`ShopifyOrders` makes signed Shopify `orders/create` deliveries from the real sample order, each
a distinct order with a unique delivery id, signed the way Shopify signs.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import orjson

from ingest.providers import get_provider

ROOT = Path(__file__).resolve().parent.parent
ORDER_FIXTURE = ROOT / "tests" / "fixtures" / "webhooks" / "shopify" / "orders_create.json"

#: Longest wait for the answers still outstanding when a phase ends.
DRAIN_TIMEOUT = 15.0

RequestFactory = Callable[[], tuple[bytes, str]]
"""Makes the next request: its bytes and a key naming it (the delivery id)."""


def install_uvloop() -> str:
    """Use uvloop's event loop when it is installed (uvicorn's default loop too)."""
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


def http_request(host: str, port: int, path: str, headers: dict[str, str], body: bytes) -> bytes:
    """One HTTP/1.1 POST as bytes, written to the socket in one call."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class ShopifyOrders:
    """Signed Shopify orders/create deliveries: the real sample order, a new order id each."""

    def __init__(
        self,
        host: str,
        port: int,
        source: str,
        secret: str,
        *,
        prefix: str = "bench",
        pretty: bool = False,
        first_order_id: int = 7_000_000_000_001,
    ) -> None:
        order: dict[str, Any] = json.loads(ORDER_FIXTURE.read_bytes())
        order["id"] = "@ORDER_ID@"
        order["admin_graphql_api_id"] = "gid://shopify/Order/@ORDER_ID@"
        template = orjson.dumps(order, option=orjson.OPT_INDENT_2 if pretty else 0)
        self._head, self._middle, self._tail = template.split(b"@ORDER_ID@")
        # The id placeholder sits inside a JSON string; the order id itself is a JSON number.
        self._head = self._head[:-1]
        self._middle = self._middle[1:]
        self._host = host
        self._port = port
        self._path = f"/webhooks/{source}"
        self._secret = secret
        self._prefix = prefix
        self._shopify = get_provider("shopify")
        self._order_ids = itertools.count(first_order_id)
        self._serial = itertools.count(1)
        self.sent = 0

    def body(self, order_id: int) -> bytes:
        digits = str(order_id).encode()
        return self._head + digits + self._middle + digits + self._tail

    def __call__(self) -> tuple[bytes, str]:
        order_id = next(self._order_ids)
        body = self.body(order_id)
        delivery_id = f"{self._prefix}-{next(self._serial)}"
        headers = self._shopify.sign(
            body,
            self._secret,
            topic="orders/create",
            delivery_id=delivery_id,
            timestamp=int(time.time()),
        )
        self.sent += 1
        return http_request(self._host, self._port, self._path, headers, body), delivery_id


# ----------------------------------------------------------------------------- connections


class ConnectionClosed(Exception):
    pass


class _Connection(asyncio.Protocol):
    """A keep-alive HTTP/1.1 connection with at most one request in flight."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._need = -1
        self._body_start = 0
        self._status = 0
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def send(self, request: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None and self._waiter is None
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self._waiter

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._need < 0:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
            self._status = int(head[0].split(" ", 2)[1])
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            self._body_start = end + 4
            self._need = end + 4 + length
        if len(self._buffer) >= self._need:
            body = bytes(self._buffer[self._body_start : self._need])
            del self._buffer[: self._need]
            self._need = -1
            waiter, self._waiter = self._waiter, None
            if waiter is not None and not waiter.done():
                waiter.set_result((self._status, body))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionClosed(str(exc) if exc else "closed by the server"))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def _connect(host: str, port: int) -> _Connection:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(_Connection, host, port)
    return protocol


# ----------------------------------------------------------------------------- results


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list, `q` in percent (99 for p99; nan when
    empty)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


@dataclass
class PhaseResult:
    """One load phase. Latencies in seconds.

    `ok`, `failed`, `errors` and `latencies` cover the requests of the measured window: in a
    closed loop those sent and answered within it, in an open loop those scheduled within it,
    however late their answer. `completed` counts the 2xx answers that arrived within the
    window (the throughput); `total_*` cover the warm-up and the drain too.
    """

    name: str
    mode: str
    concurrency: int
    target_rate: float | None
    duration: float
    ok: int = 0
    failed: int = 0
    errors: int = 0
    completed: int = 0
    latencies: list[float] = field(default_factory=list)
    total_ok: int = 0
    total_sent: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    max_connections: int = 0
    elapsed: float = 0.0
    #: Keys of every request answered with a 2xx (warm-up and drain included).
    acknowledged: list[str] = field(default_factory=list)
    #: When each of those answers arrived (Unix time, same order as `acknowledged`).
    acknowledged_at: list[float] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        """2xx answers per second within the measured window."""
        return self.completed / self.duration if self.duration else 0.0

    def latency_ms(self, q: float) -> float:
        return percentile(sorted(self.latencies), q) * 1000

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        return {
            "name": self.name,
            "mode": self.mode,
            "concurrency": self.concurrency,
            "target_rate": self.target_rate,
            "duration_s": self.duration,
            "throughput_per_s": round(self.throughput, 1),
            "completed": self.completed,
            "ok": self.ok,
            "failed": self.failed,
            "errors": self.errors,
            "p50_ms": round(percentile(ordered, 50) * 1000, 2),
            "p99_ms": round(percentile(ordered, 99) * 1000, 2),
            "max_ms": round((ordered[-1] if ordered else float("nan")) * 1000, 2),
            "total_ok": self.total_ok,
            "total_sent": self.total_sent,
            "statuses": self.statuses,
            "max_connections": self.max_connections,
        }


class _Recorder:
    def __init__(
        self, result: PhaseResult, window_start: float, window_end: float, *, open_loop: bool
    ) -> None:
        self.result = result
        self.window_start = window_start
        self.window_end = window_end
        self.open_loop = open_loop

    def record(self, started: float, status: int | None, key: str) -> None:
        done = time.perf_counter()
        result = self.result
        result.total_sent += 1
        in_window = self.window_start <= done <= self.window_end
        if status is not None:
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if 200 <= status < 300:
                result.total_ok += 1
                result.acknowledged.append(key)
                result.acknowledged_at.append(time.time())
                result.completed += in_window
        if self.open_loop:
            counted = self.window_start <= started <= self.window_end
        else:
            counted = self.window_start <= started and done <= self.window_end
        if not counted:
            return
        if status is None:
            result.errors += 1
        elif 200 <= status < 300:
            result.ok += 1
            result.latencies.append(done - started)
        else:
            result.failed += 1


# ----------------------------------------------------------------------------- drivers


async def run_closed(
    host: str,
    port: int,
    make_request: RequestFactory,
    *,
    concurrency: int,
    duration: float,
    warmup: float = 1.0,
    name: str = "",
) -> PhaseResult:
    """`concurrency` connections, each sending back to back for `warmup + duration` seconds."""
    result = PhaseResult(name or f"c{concurrency}", "closed", concurrency, None, duration)
    connections = [await _connect(host, port) for _ in range(concurrency)]
    result.max_connections = concurrency
    start = time.perf_counter()
    recorder = _Recorder(result, start + warmup, start + warmup + duration, open_loop=False)
    stop_at = recorder.window_end

    async def worker(connection: _Connection) -> None:
        while time.perf_counter() < stop_at and not connection.closed:
            request, key = make_request()
            started = time.perf_counter()
            try:
                status, _ = await connection.send(request)
            except ConnectionClosed:
                recorder.record(started, None, key)
                return
            recorder.record(started, status, key)

    workers = [asyncio.create_task(worker(c)) for c in connections]
    try:
        _, late = await asyncio.wait(workers, timeout=warmup + duration + DRAIN_TIMEOUT)
        for task in late:  # a request unanswered long after the end: an error, not an ack
            task.cancel()
        result.errors += len(late)
    finally:
        for connection in connections:
            connection.close()
        result.elapsed = time.perf_counter() - start
    return result


async def run_open(
    host: str,
    port: int,
    make_request: RequestFactory,
    *,
    rate: float,
    duration: float,
    warmup: float = 1.0,
    max_connections: int = 512,
    name: str = "",
) -> PhaseResult:
    """Start `rate` requests per second for `warmup + duration` seconds, on schedule.

    Each request's latency counts from its scheduled start, so time spent waiting for a free
    connection (or for a stalled server) is part of it.
    """
    result = PhaseResult(name or f"rate{rate:g}", "open", 0, rate, duration)
    idle: list[_Connection] = []
    every: list[_Connection] = []
    opened = 0
    slots = asyncio.Semaphore(max_connections)
    start = time.perf_counter() + 0.05
    recorder = _Recorder(result, start + warmup, start + warmup + duration, open_loop=True)
    tasks: set[asyncio.Task[None]] = set()

    async def one(due: float) -> None:
        nonlocal opened
        async with slots:
            connection = idle.pop() if idle else None
            if connection is None or connection.closed:
                connection = await _connect(host, port)
                every.append(connection)
                opened += 1
                result.max_connections = max(result.max_connections, opened)
            request, key = make_request()
            try:
                status, _ = await connection.send(request)
            except ConnectionClosed:
                recorder.record(due, None, key)
                opened -= 1
                return
            recorder.record(due, status, key)
            idle.append(connection)

    interval = 1.0 / rate
    total = int((warmup + duration) * rate)
    for index in range(total):
        due = start + index * interval
        delay = due - time.perf_counter()
        if delay > 0.0005:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    try:
        if tasks:
            # Wait for the backlog of a server that fell behind, within bounds; requests still
            # unanswered then count as errors (never as acknowledged).
            _, late = await asyncio.wait(tasks, timeout=DRAIN_TIMEOUT)
            for task in late:
                task.cancel()
            result.errors += len(late)
    finally:
        for connection in every:
            connection.close()
        result.elapsed = time.perf_counter() - start
    return result


def phases(spec: str) -> Iterator[tuple[str, float]]:
    """Parse "c1,c8,r1000" into (closed, 1), (closed, 8), (open, 1000)."""
    for item in spec.split(","):
        item = item.strip()
        if item.startswith("c"):
            yield "closed", float(item[1:])
        elif item.startswith("r"):
            yield "open", float(item[1:])
        else:
            raise ValueError(f"phase {item!r}: use cN (N connections) or rN (N requests/s)")
