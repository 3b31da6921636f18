"""Errors the ingest endpoint answers with. One body shape for every error response:

{"error": {"status": 401, "code": "invalid_signature", "message": "..."}}
"""

from __future__ import annotations


class IngestError(Exception):
    """An error with its HTTP status, a stable machine-readable code and a human message."""

    status: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class UnknownSource(IngestError):
    status, code = 404, "unknown_source"


class InvalidSignature(IngestError):
    status, code = 401, "invalid_signature"


class BodyTooLarge(IngestError):
    status, code = 413, "body_too_large"


class UnsupportedMediaType(IngestError):
    status, code = 415, "unsupported_media_type"


class RequestTimeout(IngestError):
    """The body did not arrive within the body read timeout; the connection is closed."""

    status, code = 408, "request_timeout"


class ClientDisconnected(IngestError):
    """The sender closed the connection before the whole body arrived (nobody reads the answer)."""

    status, code = 400, "client_disconnected"


class Unavailable(IngestError):
    """Transient: the delivery was not stored; the sender should retry after Retry-After."""

    status, code = 503, "unavailable"


def error_body(status: int, code: str, message: str) -> dict[str, dict[str, object]]:
    return {"error": {"status": status, "code": code, "message": message}}
