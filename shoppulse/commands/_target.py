"""The live database when the service is stopped, else the running service over HTTP.

DuckDB has one writer: while the service runs, the live file is locked, and the commands that
change or read it (quarantine, replay, reconcile) ask the service instead, at the address in its
discovery record beside the database, with the API token when one is set.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from rich.markup import escape

from shoppulse.commands._errors import err, fail
from shoppulse.discovery import discovery_path, read_discovery
from shoppulse.settings import Settings

if TYPE_CHECKING:  # imported when a command opens the database: `shoppulse --help` stays light
    import duckdb

HTTP_TIMEOUT = 120.0


@dataclass
class ServiceClient:
    """The running service, reached over HTTP."""

    client: httpx.Client
    url: str

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise fail(
                escape(
                    f"the database is in use, and the service at {self.url} does not answer "
                    f"({exc}). Is it still starting or stopping? Retry in a moment."
                )
            ) from None
        if response.status_code >= 400:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text[:300]
            raise fail(escape(f"the service answered {response.status_code}: {message}"))
        return response.json()


@contextmanager
def database_or_service(settings: Settings) -> Iterator[duckdb.DuckDBPyConnection | ServiceClient]:
    """The live database when the service is stopped, else the running service."""
    from ingest.storage.database import StorageError
    from shoppulse.database import open_database

    path = settings.db_path
    if not path.exists():
        raise fail(f"no database at {path}")
    try:
        con = open_database(path, checkpoint_wal_mb=settings.checkpoint_wal_mb)
    except StorageError as exc:
        record = read_discovery(path)
        url = record.get("api_url") if record else None
        if not isinstance(url, str):
            raise fail(
                f"{exc} No running service was found to ask instead "
                f"({discovery_path(path)} is missing)."
            ) from None
        headers = {}
        if settings.api_token is not None:
            headers["Authorization"] = f"Bearer {settings.api_token.get_secret_value()}"
        with httpx.Client(base_url=url, headers=headers, timeout=HTTP_TIMEOUT) as client:
            err.print(f"[dim]the service is running: asking it at {url}[/]")
            yield ServiceClient(client, url)
        return
    try:
        yield con
    finally:
        con.close()
