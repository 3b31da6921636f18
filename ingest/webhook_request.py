"""A webhook request as the ASGI server hands it over: raw headers, and the body to read.

The webhook endpoint is the service's hot path, so it reads the ASGI scope and messages itself
instead of building a framework request object per delivery.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.types import Message, Receive, Scope


class ClientGone(Exception):
    """The sender closed the connection before the whole body arrived."""


class WebhookRequest:
    """Headers (names lower-cased; a repeated header keeps its last value in `headers`, every
    value in `raw_headers`) and the body, read from the ASGI `receive` callable."""

    __slots__ = ("headers", "raw_headers", "receive")

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.raw_headers: list[tuple[bytes, bytes]] = scope["headers"]
        self.headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in self.raw_headers
        }
        self.receive = receive

    async def stream(self) -> AsyncIterator[bytes]:
        """The body's chunks as they arrive; raises ClientGone on a disconnect."""
        while True:
            message: Message = await self.receive()
            if message["type"] != "http.request":
                raise ClientGone
            chunk: bytes = message.get("body", b"")
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                return
