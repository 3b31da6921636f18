"""The webhook endpoint served straight from ASGI, ahead of FastAPI's router and middleware.

`POST /webhooks/{source_id}` is the service's hot path: every delivery of every store. FastAPI's
routing, dependency handling and middleware stack cost more per request than everything ShopPulse
itself does for a delivery (signature, parsing, normalizing), so `ShopPulseApp` answers these
requests itself with the same `Intake.receive` and the same error bodies, and hands every other
request (and the lifespan) to FastAPI. The route stays declared on the FastAPI router, so the
OpenAPI description is unchanged; requests that only look alike (`/webhooks/`, `/webhooks/a/b`,
other methods) go to FastAPI, which answers them as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ingest.errors import IngestError, error_body
from ingest.intake import Intake, json_response

log = logging.getLogger("shoppulse.service")

WEBHOOK_PREFIX = "/webhooks/"


def webhook_source(scope: Scope) -> str | None:
    """The source id of a `POST /webhooks/{source_id}` request, else None."""
    if scope["type"] != "http" or scope["method"] != "POST":
        return None
    path: str = scope["path"]
    if not path.startswith(WEBHOOK_PREFIX):
        return None
    source_id = path[len(WEBHOOK_PREFIX) :]
    if not source_id or "/" in source_id:
        return None
    return source_id


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    """The one error body shape, as a response."""
    return json_response(status, error_body(status, code, message), headers)


def unexpected_error_response(request: Request, exc: BaseException) -> Response:
    log.error("unexpected error answering %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "internal error; see the service log")


class ShopPulseApp(FastAPI):
    """FastAPI with the webhook endpoint answered before routing (see the module docstring)."""

    webhook_intake: Callable[[], Intake] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        source_id = webhook_source(scope) if self.webhook_intake is not None else None
        if source_id is None or self.webhook_intake is None:
            await super().__call__(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await self.webhook_intake().receive(source_id, request)
        except IngestError as exc:
            response = error_response(exc.status, exc.code, exc.message, exc.headers)
        except Exception as exc:  # never a traceback to the sender; the log has it
            response = unexpected_error_response(request, exc)
        await response(scope, receive, send)
