"""Disk full and write failures: no 2xx for anything not stored, readiness says why, and the
service recovers once space returns.

The real variants put the live database on a size-limited tmpfs and fill it (they need root to
mount and are skipped with the reason otherwise). The injected variants always run: the disk guard
tripped by a threshold above the real free space, and a storage failure under concurrent load.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
from fastapi.testclient import TestClient

from ingest.intake import FREE_SPACE_TTL
from ingest.sources import Source
from shoppulse.service import create_app
from shoppulse.settings import Settings
from tests.conftest import FrozenClock, fixture_json, signed_post
from tests.helpers.app import service_of

pytestmark = pytest.mark.timeout(120)

ORDER: dict[str, Any] = fixture_json("shopify", "orders_create.json")
MB = 1024 * 1024


def order(order_id: int) -> bytes:
    return orjson.dumps(dict(ORDER, id=order_id))


class Sender:
    """Posts distinct signed orders and remembers which were acknowledged and which were not."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.acked: set[str] = set()
        self.refused: set[str] = set()
        self.statuses: list[int] = []
        self.messages: list[str] = []
        self._next = 0
        self._lock = threading.Lock()

    def send(self, count: int = 1) -> list[int]:
        statuses = []
        for _ in range(count):
            with self._lock:
                self._next += 1
                number = self._next
            delivery_id = f"d{number}"
            response = signed_post(
                self.client,
                "acme",
                "shopify",
                order(9_000_000 + number),
                topic="orders/create",
                delivery_id=delivery_id,
            )
            with self._lock:
                self.statuses.append(response.status_code)
                if response.status_code == 200:
                    assert response.json()["status"] == "stored"
                    self.acked.add(delivery_id)
                else:
                    assert response.status_code == 503, response.text
                    assert response.headers["retry-after"]
                    assert response.json()["error"]["code"] == "unavailable"
                    self.refused.add(delivery_id)
                    self.messages.append(response.json()["error"]["message"])
            statuses.append(response.status_code)
        return statuses


def stored_ids(db: Path) -> set[str]:
    with duckdb.connect(str(db), read_only=True) as con:
        return {row[0] for row in con.execute("SELECT delivery_id FROM deliveries").fetchall()}


def assert_nothing_acknowledged_was_lost(db: Path, sender: Sender) -> None:
    stored = stored_ids(db)
    assert sender.acked <= stored, f"acknowledged but lost: {sorted(sender.acked - stored)[:5]}"
    assert stored <= sender.acked | sender.refused
    assert not (sender.refused & stored), "answered 503 but stored (the sender's retry dedupes)"


@contextmanager
def small_filesystem(path: Path, size_mb: int) -> Iterator[Path]:
    """A tmpfs of `size_mb` mounted at `path` (skips the test where mounting is not allowed)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a size-limited tmpfs needs root; the injected variants still run")
    path.mkdir(parents=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip()}); injected variants run")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=10, check=False)


def fill(directory: Path, leave_bytes: int) -> Path:
    """Write a filler file until at most `leave_bytes` stay free on `directory`'s filesystem."""
    filler = directory / "filler"
    block = b"\0" * 65536
    with filler.open("wb") as handle:
        try:
            while shutil.disk_usage(directory).free > leave_bytes:
                free = shutil.disk_usage(directory).free
                handle.write(block[: max(4096, min(len(block), free - leave_bytes))])
                handle.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


def readiness(client: TestClient) -> tuple[int, str]:
    response = client.get("/readyz")
    body = response.json()
    return response.status_code, body.get("error", {}).get("message", "")


def test_low_disk_space_refuses_deliveries_until_space_returns(
    tmp_path: Path, sources: dict[str, Source], clock: FrozenClock
) -> None:
    with small_filesystem(tmp_path / "small", 48) as small:
        db = small / "data" / "shoppulse.duckdb"
        settings = Settings(db_path=db, batch_linger_ms=0.5, min_free_disk_mb=16)
        with TestClient(create_app(settings, sources, clock=clock)) as client:
            sender = Sender(client)
            assert sender.send(5) == [200] * 5
            filler = fill(small, 8 * MB)
            time.sleep(FREE_SPACE_TTL)  # the guard re-reads the free space this often
            assert sender.send(10) == [503] * 10
            assert all("disk space low" in message for message in sender.messages)
            status, message = readiness(client)
            assert status == 503 and "disk space low" in message and "min_free_disk_mb" in message
            assert client.get("/healthz").status_code == 200  # alive: no restart needed

            filler.unlink()
            time.sleep(FREE_SPACE_TTL)
            assert readiness(client)[0] == 200
            assert sender.send(5) == [200] * 5
            assert client.get("/api/v1/metrics/check").json()["equal"]
        assert_nothing_acknowledged_was_lost(db, sender)
        assert len(sender.acked) == 10


def test_a_full_disk_fails_writes_with_503_and_recovers(
    tmp_path: Path, sources: dict[str, Source], clock: FrozenClock
) -> None:
    """The guard is off: DuckDB itself hits ENOSPC writing its WAL."""
    with small_filesystem(tmp_path / "small", 48) as small:
        db = small / "data" / "shoppulse.duckdb"
        settings = Settings(db_path=db, batch_linger_ms=0.5, min_free_disk_mb=0)
        with TestClient(create_app(settings, sources, clock=clock)) as client:
            sender = Sender(client)
            assert sender.send(5) == [200] * 5
            filler = fill(small, 0)
            statuses = sender.send(20)
            assert statuses.count(503) >= 15, statuses
            status, message = readiness(client)
            assert status == 503 and "No space left on device" in message
            assert client.get("/healthz").status_code == 200

            filler.unlink()
            assert sender.send(5) == [200] * 5
            assert readiness(client)[0] == 200
            assert client.get("/api/v1/metrics/check").json()["equal"]
        assert_nothing_acknowledged_was_lost(db, sender)


def test_a_checkpoint_on_a_full_disk_needs_a_restart_and_loses_nothing(
    tmp_path: Path, sources: dict[str, Source], clock: FrozenClock
) -> None:
    """DuckDB stops the database when a checkpoint cannot be written: /healthz asks for a restart,
    and after one every acknowledged delivery is back from the write-ahead log."""
    with small_filesystem(tmp_path / "small", 48) as small:
        db = small / "data" / "shoppulse.duckdb"
        settings = Settings(db_path=db, batch_linger_ms=0.5, min_free_disk_mb=0)
        with TestClient(create_app(settings, sources, clock=clock)) as client:
            sender = Sender(client)
            assert sender.send(20) == [200] * 20  # in the WAL, not yet checkpointed
            filler = fill(small, 0)
            done = threading.Event()

            def checkpoint(con: duckdb.DuckDBPyConnection) -> None:
                try:
                    con.execute("FORCE CHECKPOINT")
                finally:
                    done.set()

            service_of(client).writer.run_job(checkpoint)  # as DuckDB's automatic one would
            assert done.wait(10)
            sender.send(5)
            filler.unlink()  # space alone does not bring the stopped database back
            sender.send(3)
            health = client.get("/healthz")
            assert health.status_code == 503, health.text
            assert health.json()["error"]["code"] == "restart_needed"
            assert readiness(client)[0] == 503
            assert sender.statuses[20:] == [503] * 8
        with TestClient(create_app(settings, sources, clock=clock)) as client:
            assert client.get("/healthz").status_code == 200
            assert readiness(client)[0] == 200
            sender.client = client
            assert sender.send(3) == [200] * 3
            assert client.get("/api/v1/metrics/check").json()["equal"]
        assert_nothing_acknowledged_was_lost(db, sender)
        assert len(sender.acked) == 23


# ------------------------------------------------------------------ always-running variants


def test_the_disk_guard_trips_and_recovers(
    settings: Settings, sources: dict[str, Source], clock: FrozenClock
) -> None:
    with TestClient(create_app(settings, sources, clock=clock)) as client:
        intake = service_of(client).intake
        sender = Sender(client)
        assert sender.send(2) == [200, 200]
        free_mb = shutil.disk_usage(settings.db_path.parent).free // MB
        intake.settings = settings.model_copy(update={"min_free_disk_mb": free_mb + 1024})
        assert sender.send(3) == [503] * 3
        assert "disk space low" in readiness(client)[1]
        intake.settings = settings
        assert readiness(client)[0] == 200
        assert sender.send(2) == [200, 200]
    assert_nothing_acknowledged_was_lost(settings.db_path, sender)


def test_a_storage_failure_under_concurrent_load_acknowledges_only_what_is_stored(
    settings: Settings, sources: dict[str, Source], clock: FrozenClock
) -> None:
    with TestClient(create_app(settings, sources, clock=clock)) as client:
        con = service_of(client).con.cursor()
        sender = Sender(client)
        stop = threading.Event()
        errors: list[BaseException] = []

        def load() -> None:
            try:
                while not stop.is_set():
                    sender.send()
            except BaseException as exc:  # surfaced below
                errors.append(exc)
                raise

        threads = [threading.Thread(target=load) for _ in range(6)]
        for thread in threads:
            thread.start()
        try:
            while len(sender.acked) < 30 and not errors:
                threading.Event().wait(0.01)
            con.execute("ALTER TABLE events RENAME TO events_away")  # every insert now fails
            refused = len(sender.refused)
            while len(sender.refused) < refused + 20 and not errors:
                threading.Event().wait(0.01)
            con.execute("ALTER TABLE events_away RENAME TO events")
            acked = len(sender.acked)
            while len(sender.acked) < acked + 30 and not errors:
                threading.Event().wait(0.01)
        finally:
            stop.set()
            for thread in threads:
                thread.join(10)
        assert not errors, errors
        assert readiness(client)[0] == 200
        assert client.get("/api/v1/metrics/check").json()["equal"]
    assert_nothing_acknowledged_was_lost(settings.db_path, sender)
    with duckdb.connect(str(settings.db_path), read_only=True) as con:
        row = con.execute("SELECT count(*), count(DISTINCT delivery_seq) FROM events").fetchone()
    assert row == (len(sender.acked), len(sender.acked))
