"""Ingest's HTTP routes: the webhook endpoint and the operational endpoints."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from ingest.intake import Intake, json_response

ERROR_RESPONSES: dict[int | str, dict[str, str]] = {
    401: {"description": "Missing or invalid signature; nothing stored but a count."},
    404: {"description": "Unknown source."},
    413: {"description": "Body over the size limit."},
    415: {"description": "Content type is not JSON."},
    503: {"description": "Overloaded or storage unavailable; retry after Retry-After."},
}


def build_router(get_intake: Callable[[], Intake]) -> APIRouter:
    """The routes; `get_intake` returns the running service's Intake (made in the lifespan)."""
    router = APIRouter()

    @router.post(
        "/webhooks/{source_id}",
        tags=["ingest"],
        summary="Receive one webhook delivery",
        responses={
            200: {"description": "Stored (committed), or a duplicate of a stored delivery."},
            202: {"description": "Authentic but unusable: stored in quarantine with a reason."},
            **ERROR_RESPONSES,
        },
    )
    async def receive(source_id: str, request: Request) -> Response:
        return await get_intake().receive(source_id, request)

    @router.get("/healthz", tags=["operations"], summary="The process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        tags=["operations"],
        summary="The database is writable",
        responses={503: {"description": "The last write failed; deliveries get 503."}},
    )
    async def readyz() -> Response:
        intake = get_intake()
        writer = intake.writer
        if not writer.healthy:
            return json_response(
                503,
                {
                    "error": {
                        "status": 503,
                        "code": "not_ready",
                        "message": f"the last write failed: {writer.last_error}",
                    }
                },
                {"Retry-After": str(intake.settings.retry_after_seconds)},
            )
        return json_response(200, {"status": "ready", "queue_depth": writer.queue_depth})

    @router.get("/api/v1/ingest/stats", tags=["operations"], summary="Delivery counts")
    async def stats() -> Response:
        intake = get_intake()
        snapshot = intake.stats.snapshot()
        snapshot["queue_depth"] = intake.writer.queue_depth
        snapshot["writer_healthy"] = intake.writer.healthy
        return json_response(200, snapshot)

    @router.get("/metrics", tags=["operations"], summary="Prometheus metrics")
    async def metrics() -> Response:
        intake = get_intake()
        intake.stats.queue_depth.set(intake.writer.queue_depth)
        return Response(generate_latest(intake.stats.registry), media_type=CONTENT_TYPE_LATEST)

    return router
