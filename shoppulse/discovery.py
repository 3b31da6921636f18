"""The discovery record: how a running service says where it can be reached.

DuckDB lets one process open the live file, so while the service runs, the commands that need
the database (`dashboard`, `quarantine`, `replay`, `reconcile`) ask the service over HTTP
instead. They find it through a small JSON record the service writes beside its live database
(`<db>.service.json`) when it starts and removes when it stops. This module only reads and writes
that record, so the commands import it without the data stack the service itself needs.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import orjson

from shoppulse.settings import Settings


def discovery_path(db_path: Path) -> Path:
    """Where a running service says how to reach it: beside the live database."""
    return db_path.with_name(db_path.name + ".service.json")


def read_discovery(db_path: Path) -> dict[str, object] | None:
    """The running service's discovery record for `db_path`, if any (None when it is missing or
    unreadable, as when the service is stopped or is writing it)."""
    try:
        record = orjson.loads(discovery_path(db_path).read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None


def write_discovery(settings: Settings) -> Path:
    """Write the record of the service started with `settings` (this process) and return its path.

    An address that listens everywhere is recorded as 127.0.0.1, which the readers on this
    machine can reach. The record is written under a temporary name and renamed into place, so a
    reader never sees half of it."""
    host = settings.host if settings.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    path = discovery_path(settings.db_path)
    record = {
        "api_url": f"{'https' if settings.ssl_certfile else 'http'}://{host}:{settings.port}",
        "pid": os.getpid(),
        "db_path": str(settings.db_path),
        "started_at": datetime.now(UTC).isoformat(),
    }
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(orjson.dumps(record))
    temporary.replace(path)
    return path
