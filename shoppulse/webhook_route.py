"""The webhook endpoint served straight from ASGI, ahead of FastAPI's router and middleware.

`POST /webhooks/{source_id}` is the service's hot path: every delivery of every store. FastAPI's
routing, dependency handling and middleware stack cost more per request than everything ShopPulse
itself does for a delivery (signature, parsing, normalizing), so `ShopPulseApp` answers these
requests itself with the same `Intake.answer` and the same error bodies, and hands every other
request (and the lifespan) to FastAPI. The route stays declared on the FastAPI router, so the
OpenAPI description is unchanged; requests that only look alike (`/webhooks/`, `/webhooks/a/b`,
other methods) go to FastAPI, which answers them as before.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from ingest.intake import Intake
from ingest.responses import unexpected_error_answer
from ingest.webhook_request import WebhookRequest

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


class ShopPulseApp(FastAPI):
    """FastAPI with the webhook endpoint answered before routing (see the module docstring)."""

    webhook_intake: Callable[[], Intake] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        source_id = webhook_source(scope) if self.webhook_intake is not None else None
        if source_id is None or self.webhook_intake is None:
            await super().__call__(scope, receive, send)
            return
        try:
            intake = self.webhook_intake()
        except Exception as exc:  # not started (no lifespan): a 500 in the error shape
            answer = unexpected_error_answer("POST", scope["path"], exc)
        else:
            answer = await intake.answer(source_id, WebhookRequest(scope, receive))
        await answer.send(send)
