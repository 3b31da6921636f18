"""An oversized body against a real `shoppulse serve`: the sender reads the 413, even when it
writes the whole body before reading (Python's urllib, most webhook senders), because the
service drains the rest of the body (bounded) before it answers.
"""

from __future__ import annotations

import asyncio
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from starlette.types import Message, Receive

from ingest.body_drain import drain
from ingest.providers import get_provider
from tests.conftest import SECRET
from tests.e2e.server import ServiceProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

LIMIT = 64 * 1024
#: Far more than the socket buffers hold, so a sender still writes when the 413 is decided.
BIG = 8 * 1024 * 1024


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    process = ServiceProcess.for_sources(
        tmp_path_factory.mktemp("oversized"),
        {"acme": ("shopify", SECRET)},
        env={"SHOPPULSE_MAX_BODY_BYTES": str(LIMIT)},
    )
    with process:
        yield process


def signed_headers(body: bytes) -> dict[str, str]:
    return get_provider("shopify").sign(
        body, SECRET, topic="orders/create", delivery_id="big", timestamp=0
    )


def big_body() -> bytes:
    return b'{"note": "' + b"x" * BIG + b'"}'


def read_answer(sock: socket.socket) -> tuple[int, dict[str, Any]]:
    """Status and JSON body of one HTTP/1.1 answer with a Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before an answer: {data!r}"
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    length = next(
        int(line.split(":")[1]) for line in lines if line.lower().startswith("content-length")
    )
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk
        rest += chunk
    return int(lines[0].split()[1]), orjson.loads(rest[:length])


@pytest.mark.parametrize("attempt", range(3))
def test_urllib_reads_the_413_after_writing_the_whole_body(
    service: ServiceProcess, attempt: int
) -> None:
    body = big_body()
    request = urllib.request.Request(
        f"{service.base_url}/webhooks/acme", data=body, headers=signed_headers(body), method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(request, timeout=30)
    assert answer.value.code == 413
    error = orjson.loads(answer.value.read())["error"]
    assert error["code"] == "body_too_large"
    assert error["message"] == f"the body is {len(body)} bytes; the limit is {LIMIT}"


def test_a_chunked_body_over_the_limit_is_drained_and_the_connection_kept(
    service: ServiceProcess,
) -> None:
    """No Content-Length: the limit is found while reading, the rest is drained, the 413 is
    read by a sender that writes everything first, and the connection serves the next request."""
    body = big_body()
    head = ["POST /webhooks/acme HTTP/1.1", "Host: 127.0.0.1", "Transfer-Encoding: chunked"]
    head += [f"{name}: {value}" for name, value in signed_headers(body).items()]
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(part), part)
        for part in (body[i : i + 65536] for i in range(0, len(body), 65536))
    )
    with socket.create_connection(("127.0.0.1", service.port), timeout=30) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + chunks + b"0\r\n\r\n")
        status, answer = read_answer(sock)
        assert status == 413, answer
        assert answer["error"]["message"] == f"the body is over the limit of {LIMIT} bytes"
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert read_answer(sock)[0] == 200


def test_a_sender_that_expects_100_continue_gets_the_413_without_sending(
    service: ServiceProcess,
) -> None:
    head = [
        "POST /webhooks/acme HTTP/1.1",
        "Host: 127.0.0.1",
        "Content-Type: application/json",
        f"Content-Length: {BIG}",
        "Expect: 100-continue",
    ]
    with socket.create_connection(("127.0.0.1", service.port), timeout=30) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        status, answer = read_answer(sock)
    assert status == 413, answer


def receiving(chunks: int, stall: bool = False) -> Receive:
    """The `receive` of a request whose body arrives in `chunks` messages of 1 KiB (then
    stalls, with `stall`)."""
    sent = 0

    async def receive() -> Message:
        nonlocal sent
        if sent == chunks:
            if stall:
                await asyncio.sleep(60)
            return {"type": "http.disconnect"}
        sent += 1
        return {"type": "http.request", "body": b"x" * 1024, "more_body": stall or sent < chunks}

    return receive


def test_the_drain_is_bounded_in_bytes_and_seconds() -> None:
    assert asyncio.run(drain(receiving(10), max_bytes=64 * 1024, seconds=5))
    assert not asyncio.run(drain(receiving(100), max_bytes=64 * 1024, seconds=5))
    assert not asyncio.run(drain(receiving(3, stall=True), max_bytes=64 * 1024, seconds=0.2))
