"""The publisher's manifest: a SQLite file (`analytics/_publisher.sqlite3`) that says which Parquet
files are published, which are retired (kept until the grace period ends), how far the last
cycle reached, each published entity's partition, and the quarantined deliveries to watch.

It is the publisher's own bookkeeping: the catalog is written from it, and a file no manifest row
names is a leftover of a crashed cycle. Nothing but the publisher opens it. A cycle changes it in
one transaction (`begin`/`commit`), so a crash leaves it as the last committed cycle left it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

STATE_FILE = "_publisher.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    dataset TEXT NOT NULL, part TEXT NOT NULL, path TEXT PRIMARY KEY,
    rows INTEGER NOT NULL, lo INTEGER, hi INTEGER);
CREATE INDEX IF NOT EXISTS files_by_part ON files (dataset, part);
CREATE TABLE IF NOT EXISTS keys (
    dataset TEXT NOT NULL, k TEXT NOT NULL, part TEXT NOT NULL,
    PRIMARY KEY (dataset, k)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tracked (
    delivery_seq INTEGER PRIMARY KEY, status TEXT NOT NULL, reason TEXT,
    event_count INTEGER NOT NULL, overridden INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS retired (path TEXT PRIMARY KEY, at REAL NOT NULL);
CREATE TEMP TABLE wanted (k TEXT PRIMARY KEY);
"""


class PartFile(NamedTuple):
    """One published Parquet file, as the manifest records it."""

    dataset: str
    #: The partition: a UTC day (`YYYY-MM-DD`) or `none`; '' for a dataset without partitions.
    part: str
    #: Relative to the published directory; never reused for another file.
    path: str
    #: Rows in the file (counted for append-only parts; 0 where nobody needs the count).
    rows: int
    #: The range of sequence numbers an append-only part holds; None for other files.
    lo: int | None
    hi: int | None


class TrackedDelivery(NamedTuple):
    """A published quarantined delivery whose status may change later (a replay)."""

    delivery_seq: int
    status: str
    reason: str | None
    event_count: int


class Manifest:
    """The manifest at `path` (created if missing)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = FULL")
        self._db.executescript(_SCHEMA)

    # ------------------------------------------------------------------ transactions

    def begin(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self._db.execute("COMMIT")

    def rollback(self) -> None:
        self._db.execute("ROLLBACK")

    def close(self) -> None:
        self._db.close()

    # ------------------------------------------------------------------ marks

    def meta(self, name: str, default: str = "0") -> str:
        """A named mark of the last cycle (generation, sequence numbers, times), as text."""
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", [name]).fetchone()
        return str(row[0]) if row else default

    def set_meta(self, name: str, value: object) -> None:
        self._db.execute(
            "INSERT INTO meta VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            [name, str(value)],
        )

    # ------------------------------------------------------------------ files

    def datasets(self) -> list[str]:
        """The datasets that have published files."""
        return [str(r[0]) for r in self._db.execute("SELECT DISTINCT dataset FROM files")]

    def files(self, dataset: str) -> list[str]:
        """The published files of `dataset`, in part and sequence order."""
        rows = self._db.execute(
            "SELECT path FROM files WHERE dataset = ? ORDER BY part, coalesce(lo, 0), path",
            [dataset],
        ).fetchall()
        return [str(r[0]) for r in rows]

    def paths(self, dataset: str, part: str | None = None) -> list[str]:
        """The published files of `dataset` (of one `part` if given), in no particular order."""
        if part is None:
            rows = self._db.execute("SELECT path FROM files WHERE dataset = ?", [dataset])
        else:
            rows = self._db.execute(
                "SELECT path FROM files WHERE dataset = ? AND part = ?", [dataset, part]
            )
        return [str(r[0]) for r in rows]

    def any_file(self, dataset: str) -> str | None:
        """One published file of `dataset`, if it has any."""
        row = self._db.execute(
            "SELECT path FROM files WHERE dataset = ? LIMIT 1", [dataset]
        ).fetchone()
        return str(row[0]) if row else None

    def parts(self, dataset: str) -> list[PartFile]:
        """Every published file of `dataset` with its row count and range, by `lo`."""
        rows = self._db.execute(
            "SELECT dataset, part, path, rows, lo, hi FROM files WHERE dataset = ? ORDER BY lo",
            [dataset],
        ).fetchall()
        return [PartFile(*r) for r in rows]

    def known_paths(self) -> set[str]:
        """Every file the manifest names, published or retired."""
        return {
            str(r[0])
            for r in self._db.execute("SELECT path FROM files UNION SELECT path FROM retired")
        }

    def record(self, added: Sequence[PartFile], retired: Sequence[str], at: float) -> None:
        """Publish `added`; move `retired` from the published files to the retired ones."""
        self._db.executemany(
            "INSERT INTO retired VALUES (?, ?) ON CONFLICT (path) DO NOTHING",
            [(path, at) for path in retired],
        )
        self._db.executemany("DELETE FROM files WHERE path = ?", [(path,) for path in retired])
        self._db.executemany("INSERT INTO files VALUES (?, ?, ?, ?, ?, ?)", added)

    def expired(self, cutoff: float) -> list[str]:
        """Retired files retired at or before `cutoff`."""
        return [
            str(r[0]) for r in self._db.execute("SELECT path FROM retired WHERE at <= ?", [cutoff])
        ]

    def forget_retired(self, paths: Iterable[str]) -> None:
        self._db.executemany("DELETE FROM retired WHERE path = ?", [(p,) for p in paths])

    # ------------------------------------------------------------------ entity keys

    def key_parts(self, dataset: str, keys: Iterable[str]) -> set[str]:
        """The parts the published entities with these keys are in now."""
        self._db.execute("DELETE FROM wanted")
        self._db.executemany("INSERT OR IGNORE INTO wanted VALUES (?)", [(k,) for k in keys])
        return {
            str(r[0])
            for r in self._db.execute(
                "SELECT DISTINCT k.part FROM wanted w JOIN keys k ON k.dataset = ? AND k.k = w.k",
                [dataset],
            )
        }

    def set_key_parts(self, dataset: str, pairs: Iterable[tuple[str, str]]) -> None:
        """Record the part each (key, part) entity is published in."""
        self._db.executemany(
            "INSERT INTO keys VALUES (?, ?, ?) ON CONFLICT (dataset, k) "
            "DO UPDATE SET part = excluded.part",
            [(dataset, k, p) for k, p in pairs],
        )

    def forget_keys(self, dataset: str) -> None:
        self._db.execute("DELETE FROM keys WHERE dataset = ?", [dataset])

    # ------------------------------------------------------------------ quarantined deliveries

    def track(self, deliveries: Iterable[Sequence[object]]) -> None:
        """Watch these (delivery_seq, status, reason, event_count) deliveries; known ones stay."""
        self._db.executemany("INSERT OR IGNORE INTO tracked VALUES (?, ?, ?, ?, 0)", deliveries)

    def quarantined(self, through: int) -> list[TrackedDelivery]:
        """The watched deliveries still quarantined, up to `through`, by sequence number."""
        rows = self._db.execute(
            "SELECT delivery_seq, status, reason, event_count FROM tracked "
            "WHERE status = 'quarantined' AND delivery_seq <= ?",
            [through],
        ).fetchall()
        return [TrackedDelivery(*r) for r in rows]

    def override(self, changed: Iterable[TrackedDelivery]) -> None:
        """Record the new status of these watched deliveries."""
        self._db.executemany(
            "UPDATE tracked SET status = ?, reason = ?, event_count = ?, overridden = 1 "
            "WHERE delivery_seq = ?",
            [(d.status, d.reason, d.event_count, d.delivery_seq) for d in changed],
        )

    def overrides(self) -> list[TrackedDelivery]:
        """Every watched delivery whose status changed, by sequence number."""
        rows = self._db.execute(
            "SELECT delivery_seq, status, reason, event_count FROM tracked WHERE overridden = 1 "
            "ORDER BY delivery_seq"
        ).fetchall()
        return [TrackedDelivery(*r) for r in rows]
