"""Reconciliation's HTTP routes (behind the service's API token when one is set)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ingest.errors import IngestError, UnknownSource
from ingest.reconcile.service import AlreadyRunning, NoCredentials, Reconciler
from ingest.responses import json_response


class Conflict(IngestError):
    status, code = 409, "already_running"


class NotReconcilable(IngestError):
    status, code = 422, "no_api_credentials"


class RunNotFound(IngestError):
    status, code = 404, "not_found"


class RunRequest(BaseModel):
    """The body of `POST /api/v1/reconciliation/runs`."""

    model_config = ConfigDict(extra="forbid")

    source: str | None = Field(
        default=None, description="Only this source; omitted: every source with credentials."
    )
    since: datetime | None = Field(
        default=None,
        description="Records changed at or after this time (UTC); omitted: from where the "
        "source's last successful run started, minus the overlap.",
    )
    dry_run: bool = Field(default=False, description="Compare and report; store nothing.")

    @field_validator("since")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def build_router(get_reconciler: Callable[[], Reconciler]) -> APIRouter:
    router = APIRouter()

    @router.get(
        "/api/v1/reconciliation",
        tags=["operations"],
        summary="What reconciliation with the store APIs found, per source",
    )
    async def status() -> Response:
        return json_response(200, await run_in_threadpool(get_reconciler().status))

    @router.post(
        "/api/v1/reconciliation/runs",
        tags=["operations"],
        summary="Reconcile now (one run per source, in the background)",
        status_code=202,
        responses={
            404: {"description": "Unknown source."},
            409: {"description": "A run of the source is already going on."},
            422: {"description": "The source has no store API credentials."},
        },
    )
    async def start(request: RunRequest) -> Response:
        reconciler = get_reconciler()
        if request.source is not None:
            if request.source not in reconciler.configured:
                raise UnknownSource(f"no source '{request.source[:64]}' is configured")
            targets = [request.source]
        else:
            targets = sorted(reconciler.states)
            if not targets:
                raise NotReconcilable(
                    "no source has store API credentials (see docs/reconciliation.md)"
                )
        started = []
        for source_id in targets:
            try:
                report = await run_in_threadpool(
                    reconciler.start_run, source_id, since=request.since, dry_run=request.dry_run
                )
            except NoCredentials as exc:
                raise NotReconcilable(str(exc)) from None
            except AlreadyRunning as exc:
                running = reconciler.states[source_id].running
                if request.source is not None or running is None:
                    raise Conflict(str(exc)) from None
                report = running  # every source: the run going on stands for this one
            started.append(report.as_dict())
        return json_response(202, {"runs": started})

    @router.get(
        "/api/v1/reconciliation/runs/{run_id}",
        tags=["operations"],
        summary="One run's report (its progress while it runs)",
        responses={404: {"description": "No such run."}},
    )
    async def run(run_id: Annotated[int, Path(ge=1, le=2**62)]) -> Response:
        report = await run_in_threadpool(get_reconciler().run, run_id)
        if report is None:
            raise RunNotFound(f"no reconciliation run {run_id}")
        return json_response(200, report.as_dict())

    return router
