"""Draining the rest of a request body that will not be used, within bounds.

A sender that writes the whole body before it reads an answer (Python's urllib, most webhook
senders: all that send no `Expect: 100-continue`) sees a connection reset instead of the answer
when the server answers and closes while it still writes. The rest of the body is therefore read
and discarded first, bounded in bytes and seconds like nginx's lingering close.
"""

from __future__ import annotations

import asyncio

from starlette.types import Receive

#: The most of a body that is read and discarded, and for how long.
DRAIN_MAX_BYTES = 64 * 1024 * 1024
DRAIN_SECONDS = 5.0


async def drain(
    receive: Receive, max_bytes: int | None = None, seconds: float | None = None
) -> bool:
    """Read and discard the rest of the request body from the ASGI `receive` callable; True
    when it ended within the bounds (DRAIN_MAX_BYTES, DRAIN_SECONDS by default), False when a
    bound or a disconnect came first."""
    budget = DRAIN_MAX_BYTES if max_bytes is None else max_bytes
    drained = 0
    try:
        async with asyncio.timeout(DRAIN_SECONDS if seconds is None else seconds):
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return False  # http.disconnect
                drained += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return True
                if drained > budget:
                    return False
    except TimeoutError:
        return False
