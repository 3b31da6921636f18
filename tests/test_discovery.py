"""The discovery record on its own: written and read in a tmp dir, no service started.

The commands that ask a running service (`dashboard`, `quarantine`, `replay`, `reconcile`) rely
on `read_discovery` saying "no service" (None) rather than failing when the record is missing or
unreadable; `tests/dashboard/test_cli.py` covers the record of a real running service.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shoppulse.discovery import discovery_path, read_discovery, write_discovery
from shoppulse.settings import Settings


def test_the_record_lies_beside_the_database(tmp_path: Path) -> None:
    db = tmp_path / "data" / "shop.duckdb"
    assert discovery_path(db) == tmp_path / "data" / "shop.duckdb.service.json"


def test_a_written_record_reads_back(tmp_path: Path) -> None:
    db = tmp_path / "shop.duckdb"
    before = datetime.now(UTC)
    path = write_discovery(Settings(db_path=db, host="127.0.0.1", port=8123))
    assert path == discovery_path(db)
    record = read_discovery(db)
    assert record is not None
    assert record["api_url"] == "http://127.0.0.1:8123"
    assert record["pid"] == os.getpid()
    assert record["db_path"] == str(db)
    assert isinstance(record["started_at"], str)
    assert before <= datetime.fromisoformat(record["started_at"]) <= datetime.now(UTC)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary file left


@pytest.mark.parametrize("host", ["0.0.0.0", "::", ""])
def test_a_service_listening_everywhere_is_recorded_at_localhost(tmp_path: Path, host: str) -> None:
    db = tmp_path / "shop.duckdb"
    write_discovery(Settings(db_path=db, host=host, port=9000))
    assert (read_discovery(db) or {})["api_url"] == "http://127.0.0.1:9000"


def test_a_service_serving_tls_is_recorded_as_https(tmp_path: Path) -> None:
    db = tmp_path / "shop.duckdb"
    settings = Settings(
        db_path=db,
        host="10.0.0.5",
        port=8443,
        ssl_certfile=tmp_path / "cert.pem",
        ssl_keyfile=tmp_path / "key.pem",
    )
    write_discovery(settings)
    assert (read_discovery(db) or {})["api_url"] == "https://10.0.0.5:8443"


def test_a_later_record_replaces_the_earlier_one(tmp_path: Path) -> None:
    db = tmp_path / "shop.duckdb"
    write_discovery(Settings(db_path=db, port=8001))
    write_discovery(Settings(db_path=db, port=8002))
    assert (read_discovery(db) or {})["api_url"] == "http://127.0.0.1:8002"


def test_no_record_reads_as_none(tmp_path: Path) -> None:
    assert read_discovery(tmp_path / "shop.duckdb") is None


@pytest.mark.parametrize(
    "content", [b"", b'{"api_url": "http://127.0.0.1:8', b"\xff\xfe", b"[1, 2]"]
)
def test_a_garbled_record_reads_as_none(tmp_path: Path, content: bytes) -> None:
    db = tmp_path / "shop.duckdb"
    discovery_path(db).write_bytes(content)
    assert read_discovery(db) is None
