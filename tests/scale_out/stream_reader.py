"""Read every message of the ShopPulse stream back (what the log really holds)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from nats.js.errors import NotFoundError

from shoppulse.scale_out.connection import connect
from shoppulse.scale_out.settings import STREAM, LogSettings


@dataclass(frozen=True)
class Stored:
    seq: int
    subject: str
    msg_id: str | None
    data: bytes


def read_stream(url: str) -> list[Stored]:
    async def read() -> list[Stored]:
        nc = await connect(LogSettings(url=url), name="test-reader")
        try:
            js = nc.jetstream(timeout=10.0)
            info = await js.stream_info(STREAM)
            found = []
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                try:
                    msg = await js.get_msg(STREAM, seq)
                except NotFoundError:
                    continue
                headers = msg.headers or {}
                found.append(
                    Stored(seq, msg.subject or "", headers.get("Nats-Msg-Id"), msg.data or b"")
                )
            return found
        finally:
            await nc.close()

    return asyncio.run(read())
