"""The floor for the ingest benchmark: the least a durable, verified webhook endpoint must do.

It is not ShopPulse and must never serve a store. It answers a Shopify delivery only after it
has verified the HMAC signature (constant-time), parsed the body as JSON and committed the raw
body to a DuckDB file in a group commit (one writer thread, one appender flush and one
transaction per batch), on a bare ASGI app: no framework, no normalized events, no quarantine,
no retries, no stats, logs or metrics. ShopPulse does all of that and more on the same kind of
write path, so on a given machine this one's throughput is, in practice, a ceiling for
ShopPulse's. `bench/ingest.py --floor` serves it with the same uvicorn setup as the other two
servers and prints its throughput as a ratio of the bare endpoint's.

    FLOOR_DB=floor.duckdb .venv/bin/python -m uvicorn --app-dir bench floor_app:app --port 8002

With FLOOR_STORE=0 it answers right after the parse and stores nothing: what the write costs.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import queue
import threading
from datetime import UTC, datetime
from typing import Any

import duckdb
import orjson

SECRET = os.environ.get("FLOOR_SECRET", "bench-secret").encode()
STORE = os.environ.get("FLOOR_STORE", "1") != "0"
BATCH_MAX = 256

_JSON = (b"content-type", b"application/json")
_Job = tuple[str, datetime, bytes, asyncio.Future[bool]]


class GroupCommit:
    """One writer thread: takes every waiting delivery, commits them in one transaction."""

    def __init__(self, path: str) -> None:
        self.con = duckdb.connect(path)
        self.con.execute(
            "CREATE TABLE IF NOT EXISTS deliveries (delivery_id VARCHAR PRIMARY KEY, "
            "received_at TIMESTAMPTZ, body BLOB USING COMPRESSION uncompressed)"
        )
        self.jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self.loop: asyncio.AbstractEventLoop | None = None
        threading.Thread(target=self._run, name="floor-writer", daemon=True).start()

    def _run(self) -> None:
        while True:
            batch = [self.jobs.get()]
            while len(batch) < BATCH_MAX:
                try:
                    batch.append(self.jobs.get_nowait())
                except queue.Empty:
                    break
            try:
                self.con.execute("BEGIN")
                appender = self.con.appender("deliveries")
                appender.append_rows([(d, at, body) for d, at, body, _ in batch])
                appender.flush()
                self.con.execute("COMMIT")
                stored = True
            except duckdb.Error:
                self.con.execute("ROLLBACK")
                stored = False
            assert self.loop is not None
            self.loop.call_soon_threadsafe(_settle, [job[3] for job in batch], stored)


def _settle(futures: list[asyncio.Future[bool]], stored: bool) -> None:
    for future in futures:
        if not future.done():
            future.set_result(stored)


writer = GroupCommit(os.environ.get("FLOOR_DB", "floor.duckdb"))


async def _answer(send: Any, status: int, body: bytes) -> None:
    headers = [_JSON, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                writer.loop = asyncio.get_running_loop()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["method"] != "POST":
        await _answer(send, 200, b'{"status":"ok"}')
        return
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = b"".join(chunks)
    headers = dict(scope["headers"])
    expected = base64.b64encode(hmac.new(SECRET, body, hashlib.sha256).digest())
    if not hmac.compare_digest(expected, headers.get(b"x-shopify-hmac-sha256", b"")):
        await _answer(send, 401, b'{"error":"invalid signature"}')
        return
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError:
        await _answer(send, 400, b'{"error":"invalid JSON"}')
        return
    delivery_id = headers.get(b"x-shopify-webhook-id", b"").decode()
    if not STORE:
        await _answer(send, 200, orjson.dumps({"status": "parsed", "delivery_id": delivery_id}))
        return
    future = asyncio.get_running_loop().create_future()
    writer.jobs.put((delivery_id, datetime.now(UTC), body, future))
    if await future:
        await _answer(send, 200, orjson.dumps({"status": "stored", "delivery_id": delivery_id}))
    else:
        await _answer(send, 503, b'{"error":"not stored"}')
