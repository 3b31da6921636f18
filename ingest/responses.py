"""Every answer the service gives, rendered in one place: JSON bodies and the one error shape.

Errors have one body shape everywhere (see `ingest.errors`):
`{"error": {"status": 401, "code": "invalid_signature", "message": "..."}}`.

An `Answer` is a status, a JSON body already encoded and extra headers. The webhook endpoint
sends it straight to the ASGI server (`Answer.send`), without a framework response object on
its hot path; every other route returns it as a Starlette response (`Answer.response`). Both
carry the same bytes and headers.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Send

from ingest.errors import IngestError, error_body

log = logging.getLogger("shoppulse.service")

JSON = "application/json"
_JSON_HEADER = (b"content-type", JSON.encode())


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer: status, encoded JSON body, extra headers."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    async def send(self, send: Send) -> None:
        """Send the answer as the two ASGI messages of a response."""
        raw = [_JSON_HEADER, (b"content-length", str(len(self.body)).encode())]
        raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items()]
        await send({"type": "http.response.start", "status": self.status, "headers": raw})
        await send({"type": "http.response.body", "body": self.body})

    def response(self) -> Response:
        """The same answer as a Starlette response (for routes a framework answers)."""
        return Response(self.body, self.status, dict(self.headers), media_type=JSON)


def json_answer(
    status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None
) -> Answer:
    return Answer(status, orjson.dumps(body), headers or {})


def error_answer(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> Answer:
    """The one error body shape."""
    return json_answer(status, error_body(status, code, message), headers)


def ingest_error_answer(error: IngestError) -> Answer:
    return error_answer(error.status, error.code, error.message, error.headers)


def unexpected_error_answer(method: str, path: str, exc: BaseException) -> Answer:
    """A 500 that never shows the sender a traceback; the service log has it."""
    log.error("unexpected error answering %s %s", method, path, exc_info=exc)
    return error_answer(500, "internal_error", "internal error; see the service log")


def json_response(
    status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None
) -> Response:
    return json_answer(status, body, headers).response()


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    return error_answer(status, code, message, headers).response()
