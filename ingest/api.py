"""Ingest's HTTP routes: the webhook endpoint and the operational endpoints."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any

import duckdb
from fastapi import APIRouter, Query, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.responses import PlainTextResponse, Response

from ingest.errors import Unavailable
from ingest.intake import Intake
from ingest.quarantine import recent_quarantine
from ingest.replay import ReplayRequest, providers_for, replay_on_writer
from ingest.responses import json_response
from ingest.sources import Source
from ingest.storage.writer import Writer
from ingest.webhook_request import WebhookRequest

#: Every answer of `POST /webhooks/{source_id}`: status, code (the `status` of a 2xx body, the
#: `error.code` of an error body) and meaning. The OpenAPI description is built from it, and
#: tests/ingest/test_webhook_answers.py keeps README's status table and the answers the code can
#: give in step with it.
WEBHOOK_ANSWERS: tuple[tuple[int, str, str], ...] = (
    (200, "stored", "Verified and durably committed (sent only after the commit)."),
    (200, "duplicate", "The same delivery was stored before; not stored twice."),
    (200, "ping", "A platform's set-up ping (WooCommerce's webhook_id=<n>): nothing stored."),
    (202, "quarantined", "Authentic but unusable: stored in quarantine with a reason."),
    (400, "client_disconnected", "The sender closed the connection before the whole body."),
    (401, "invalid_signature", "Missing, invalid or ambiguous signature, or a stale timestamp."),
    (404, "unknown_source", "Unknown source."),
    (408, "request_timeout", "The body did not arrive in time; the connection is closed."),
    (413, "body_too_large", "Body over the size limit."),
    (415, "unsupported_media_type", "Content type is not JSON."),
    (500, "internal_error", "An unexpected error; nothing acknowledged, see the service log."),
    (503, "unavailable", "Overloaded or storage unavailable; retry after Retry-After."),
)


def openapi_responses(answers: Sequence[tuple[int, str, str]]) -> dict[int | str, dict[str, str]]:
    """OpenAPI `responses` of these answers: one entry per status, each code on its own line."""
    lines: dict[int, list[str]] = {}
    for status, code, meaning in answers:
        lines.setdefault(status, []).append(f"`{code}`: {meaning}")
    return {status: {"description": "  \n".join(found)} for status, found in lines.items()}


#: Per source: stored orders the figures leave out (`orders`) and how many are test,
#: cancelled or deleted. Given by the service, which knows the metrics.
NotCounted = Callable[[], Mapping[str, Mapping[str, int]]]
NOT_COUNTED_KEYS = ("orders", "test", "cancelled", "deleted")


def _add_not_counted(snapshot: dict[str, Any], counts: Mapping[str, Mapping[str, int]]) -> None:
    """Each source's `not_counted` orders, and their sum as the top-level `not_counted`."""
    total = dict.fromkeys(NOT_COUNTED_KEYS, 0)
    sources: dict[str, dict[str, Any]] = snapshot["sources"]
    for source, per_source in sources.items():
        found = counts.get(source, {})
        per_source["not_counted"] = {k: int(found.get(k, 0)) for k in NOT_COUNTED_KEYS}
        for key in NOT_COUNTED_KEYS:
            total[key] += per_source["not_counted"][key]
    snapshot["not_counted"] = total


def build_router(
    get_intake: Callable[[], Intake],
    get_connection: Callable[[], duckdb.DuckDBPyConnection] | None = None,
    not_counted: NotCounted | None = None,
) -> APIRouter:
    """The routes; `get_intake` returns the running service's Intake (made in the lifespan).

    `get_connection` returns the service's root database connection; the read-only routes that
    query the database (the quarantine list) exist only when it is given. `not_counted` adds
    the stored-but-not-counted orders to the delivery counts.
    """
    router = APIRouter()

    @router.post(
        "/webhooks/{source_id}",
        tags=["ingest"],
        summary="Receive one webhook delivery",
        responses=openapi_responses(WEBHOOK_ANSWERS),
    )
    async def receive(source_id: str, request: Request) -> Response:
        # Served ahead of routing by `ShopPulseApp` (shoppulse/webhook_route.py), which calls
        # the same `Intake.answer`: this handler runs only in an app without that fast path.
        # Whatever the endpoint does belongs in `Intake`, never here.
        answer = await get_intake().answer(
            source_id, WebhookRequest(request.scope, request.receive)
        )
        return answer.response()

    @router.get(
        "/healthz",
        tags=["operations"],
        summary="The process is up",
        responses={503: {"description": "The database stopped after a fatal error: restart."}},
    )
    async def healthz() -> Response:
        problem = get_intake().liveness_problem()
        if problem is not None:
            return json_response(
                503, {"error": {"status": 503, "code": "restart_needed", "message": problem}}
            )
        return json_response(200, {"status": "ok"})

    @router.get(
        "/readyz",
        tags=["operations"],
        summary="The database is writable",
        responses={
            503: {"description": "The last write failed or disk space is low; deliveries get 503."}
        },
    )
    async def readyz() -> Response:
        intake = get_intake()
        writer = intake.writer
        problem = intake.readiness_problem()
        if problem is not None:
            return json_response(
                503,
                {
                    "error": {"status": 503, "code": "not_ready", "message": problem},
                    **intake.stats.sections(),
                },
                {"Retry-After": str(intake.settings.retry_after_seconds)},
            )
        return json_response(
            200,
            {"status": "ready", "queue_depth": writer.queue_depth, **intake.stats.sections()},
        )

    @router.get("/api/v1/ingest/stats", tags=["operations"], summary="Delivery counts")
    async def stats() -> Response:
        intake = get_intake()
        snapshot = intake.stats.snapshot()
        snapshot["queue_depth"] = intake.writer.queue_depth
        snapshot["writer_healthy"] = intake.writer.healthy
        # with the metrics' events_folded_through: how many stored events are not counted yet
        snapshot["events_stored_through"] = intake.writer.events_stored_through
        if not_counted is not None:
            _add_not_counted(snapshot, await run_in_threadpool(not_counted))
        return json_response(200, snapshot)

    if get_connection is not None:
        connection = get_connection

        @router.get(
            "/api/v1/ingest/quarantine",
            tags=["operations"],
            summary="Recent quarantined deliveries and why",
        )
        async def quarantine(
            limit: Annotated[int, Query(ge=1, le=500, description="Most deliveries listed.")] = 50,
            source: Annotated[str | None, Query(description="Source id; omitted = all.")] = None,
            reason: Annotated[
                str | None, Query(max_length=300, description="Part of the reason (any case).")
            ] = None,
        ) -> Response:
            def read() -> list[dict[str, Any]]:
                cursor = connection().cursor()
                try:
                    return recent_quarantine(cursor, limit, source, reason)
                finally:
                    cursor.close()

            rows = await run_in_threadpool(read)
            return json_response(200, {"limit": limit, "source": source, "deliveries": rows})

    @router.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics",
        response_class=PlainTextResponse,
        responses={
            200: {
                "description": "Counters and histograms in the Prometheus text format.",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
    )
    async def metrics() -> Response:
        intake = get_intake()
        intake.stats.queue_depth.set(intake.writer.queue_depth)
        return Response(generate_latest(intake.stats.registry), media_type=CONTENT_TYPE_LATEST)

    return router


def build_replay_router(
    get_intake: Callable[[], Intake],
    get_writer: Callable[[], Writer],
    sources: Mapping[str, Source],
) -> APIRouter:
    """`POST /api/v1/ingest/replay`: replay quarantined deliveries inside the running service
    (on `get_writer()`, the writer of the live database)."""
    router = APIRouter()

    @router.post(
        "/api/v1/ingest/replay",
        tags=["operations"],
        summary="Replay quarantined deliveries",
        responses={503: {"description": "The database failed or was too busy; retry later."}},
    )
    async def replay(request: ReplayRequest) -> Response:
        intake = get_intake()
        providers = providers_for(sources, intake.settings)
        try:
            report = await replay_on_writer(
                get_writer(), providers, intake.settings, intake.clock, request
            )
        except (TimeoutError, duckdb.Error) as exc:
            problem = "did not get to it in time" if isinstance(exc, TimeoutError) else str(exc)
            raise Unavailable(
                f"replay interrupted: {problem}; retry later (chunks already replayed stay "
                "replayed)",
                headers={"Retry-After": str(intake.settings.retry_after_seconds)},
            ) from None
        intake.stats.replayed(report.moved_by_source)
        return json_response(200, report.as_dict())

    return router
