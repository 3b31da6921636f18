"""The publisher's thread, its lock (one publisher per published directory), and publishing
from a stopped service's live file."""

from __future__ import annotations

import fcntl
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import duckdb

from shoppulse.publish.catalog import published_dir
from shoppulse.publish.publisher import LOCK_FILE, Publisher, PublishReport

log = logging.getLogger("shoppulse.publish")


class PublishLock:
    """An exclusive advisory lock: one publisher per published directory at a time."""

    def __init__(self, root: Path) -> None:
        self.path = root / LOCK_FILE
        self._handle: IO[bytes] | None = None

    @property
    def held(self) -> bool:
        return self._handle is not None

    def acquire(self) -> bool:
        if self._handle is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("ab")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._handle = handle
        return True

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


class PublishWorker:
    """Runs `Publisher.publish` every `interval` seconds on its own thread, and once at stop."""

    def __init__(self, publisher: Publisher, interval: float = 2.0) -> None:
        self.publisher = publisher
        self.interval = interval
        self.lock = PublishLock(publisher.root)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="shoppulse-publish", daemon=True)
        self.last_report: PublishReport | None = None
        self.last_error: str | None = None
        self.cycles = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the thread, publish one last time, and give up the lock."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        try:
            if self.lock.acquire():
                self._cycle()
        finally:
            self.lock.release()
            self.publisher.close()

    def _cycle(self) -> None:
        try:
            self.last_report = self.publisher.publish()
            self.cycles += 1
            self.last_error = None
        except Exception as exc:  # keep running: the next cycle starts from the manifest
            self.last_error = str(exc)[:500]
            log.exception("publish failed; retrying")

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.lock.acquire():
                self._cycle()
            self._stop.wait(self.interval)


@contextmanager
def exclusive_publish(db_path: Path) -> Iterator[bool]:
    """Hold the publish lock of `db_path`'s published directory if nobody else does."""
    lock = PublishLock(published_dir(db_path))
    held = lock.acquire()
    try:
        yield held
    finally:
        lock.release()


def refresh_stopped(db_path: Path) -> str:
    """Bring the catalog up to date when no service runs on `db_path`.

    Returns "service" when a running service publishes (its catalog is current within the
    publish interval), "published" when this call published from the stopped live file (opened
    read-only, for the few moments of one cycle), or "catalog" when there is no live file and
    the existing catalog is used as it is.
    """
    if not db_path.exists():
        return "catalog"
    with exclusive_publish(db_path) as held:
        if not held:
            return "service"
        try:
            con = duckdb.connect(str(db_path), read_only=True)
        except duckdb.Error as exc:
            if "lock" in str(exc).lower():  # a service is starting right now
                return "service"
            raise
        try:
            publisher = Publisher(con, db_path)
            try:
                publisher.publish()
            finally:
                publisher.close()
        finally:
            con.close()
        return "published"
