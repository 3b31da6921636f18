"""The app behind a started `TestClient` (used as a context manager, so its lifespan ran): typed
access to what the lifespan started, and SQL on the service's live connection."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.datastructures import State

from shoppulse.service import Service

#: A window that holds every event: the figures of all time.
ALL_TIME = {"from": "1970-01-01T00:00:00Z", "to": "2200-01-01T00:00:00Z"}
#: Fields of /api/v1/metrics that follow the clock, not what is stored.
CLOCK_FIELDS = frozenset({"as_of", "freshness_seconds"})


def state_of(client: TestClient) -> State:
    """`app.state` of the client's app (TestClient types its app as a bare ASGI callable)."""
    app = client.app
    assert isinstance(app, FastAPI), f"not a FastAPI app: {app!r}"
    return app.state


def service_of(client: TestClient) -> Service:
    """The running pipeline service: its connection, writer, metrics worker, clock, ..."""
    service = state_of(client).service
    assert isinstance(service, Service), "the app is not started (use TestClient in a `with`)"
    return service


def figures(client: TestClient, **params: str) -> dict[str, Any]:
    """Fold everything committed at the app's clock, then read /api/v1/metrics."""
    service_of(client).worker.fold_now()
    response = client.get("/api/v1/metrics", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def stored_figures(client: TestClient) -> dict[str, Any]:
    """Every metric over all time without the fields that follow the clock: equal whenever what
    is stored is."""
    body = figures(client, **ALL_TIME)
    return {name: value for name, value in body.items() if name not in CLOCK_FIELDS}


def rows(client: TestClient, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    """The rows `sql` returns on a cursor of the service's live connection."""
    cursor = service_of(client).con.cursor()
    try:
        return list(cursor.execute(sql, params or []).fetchall())
    finally:
        cursor.close()


def query(client: TestClient, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    """Like `rows`, each row a dict by column name."""
    cursor = service_of(client).con.cursor()
    try:
        result = cursor.execute(sql, params or [])
        names = [column[0] for column in result.description or []]
        return [dict(zip(names, row, strict=True)) for row in result.fetchall()]
    finally:
        cursor.close()
