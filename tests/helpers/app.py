"""The app behind a started `TestClient` (used as a context manager, so its lifespan ran): typed
access to what the lifespan started, and SQL on the service's live connection."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.datastructures import State

from shoppulse.service import Service


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
