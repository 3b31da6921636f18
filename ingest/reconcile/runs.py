"""The `reconciliation_runs` table: every finished run's report, for the API and the schedule."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb
import orjson

from ingest.reconcile.report import OK, RunReport
from ingest.storage.schema import Schema

RUNS = "reconciliation_runs"
_COUNTS = ("fetched", "current", "missing", "newer", "older", "errors")

MIGRATIONS: list[list[str]] = [
    [
        f"""
        CREATE TABLE {RUNS} (
            run_id BIGINT PRIMARY KEY,
            source VARCHAR NOT NULL,
            trigger VARCHAR NOT NULL,
            dry_run BOOLEAN NOT NULL,
            since TIMESTAMPTZ NOT NULL,
            started_at TIMESTAMPTZ NOT NULL,
            finished_at TIMESTAMPTZ,
            status VARCHAR NOT NULL,
            message VARCHAR,
            fetched BIGINT NOT NULL,
            current BIGINT NOT NULL,
            missing BIGINT NOT NULL,
            newer BIGINT NOT NULL,
            older BIGINT NOT NULL,
            errors BIGINT NOT NULL,
            filled_by_kind VARCHAR NOT NULL
        )
        """
    ]
]

RECONCILIATION_SCHEMA = Schema("reconciliation", MIGRATIONS)


def next_run_id(con: duckdb.DuckDBPyConnection) -> int:
    row = con.execute(f"SELECT coalesce(max(run_id), 0) FROM {RUNS}").fetchone()
    return int(row[0]) + 1 if row else 1


def save_run(con: duckdb.DuckDBPyConnection, report: RunReport) -> None:
    """Store a finished run (call it on the writer thread inside the service)."""
    con.execute(
        f"INSERT OR REPLACE INTO {RUNS} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            report.run_id,
            report.source,
            report.trigger,
            report.dry_run,
            report.since,
            report.started_at,
            report.finished_at,
            report.status,
            report.message,
            *(getattr(report, name) for name in _COUNTS),
            orjson.dumps(dict(report.filled_kinds)).decode(),
        ],
    )


def _report(row: tuple[Any, ...]) -> RunReport:
    (run_id, source, trigger, dry_run, since, started, finished, status, message, *rest) = row
    counts, kinds = rest[: len(_COUNTS)], rest[len(_COUNTS)]
    report = RunReport(
        source, since, started, trigger, bool(dry_run), int(run_id), finished, status, message
    )
    for name, value in zip(_COUNTS, counts, strict=True):
        setattr(report, name, int(value))
    report.filled_kinds = Counter({str(k): int(v) for k, v in orjson.loads(kinds).items()})
    return report


def recent_runs(
    con: duckdb.DuckDBPyConnection, limit: int = 20, source: str | None = None
) -> list[RunReport]:
    where, params = ("WHERE source = ?", [source]) if source else ("", [])
    rows = con.execute(
        f"SELECT * FROM {RUNS} {where} ORDER BY run_id DESC LIMIT ?", [*params, limit]
    ).fetchall()
    return [_report(row) for row in rows]


def run_by_id(con: duckdb.DuckDBPyConnection, run_id: int) -> RunReport | None:
    rows = con.execute(f"SELECT * FROM {RUNS} WHERE run_id = ?", [run_id]).fetchall()
    return _report(rows[0]) if rows else None


def last_runs(con: duckdb.DuckDBPyConnection) -> dict[str, RunReport]:
    """Each source's newest run that was not a dry run."""
    rows = con.execute(
        f"SELECT * FROM {RUNS} WHERE run_id IN "
        f"(SELECT max(run_id) FROM {RUNS} WHERE NOT dry_run GROUP BY source)"
    ).fetchall()
    return {report.source: report for report in map(_report, rows)}


def last_good_start(con: duckdb.DuckDBPyConnection, source: str) -> datetime | None:
    """When the source's last successful (not dry) run started: the next window starts there."""
    row = con.execute(
        f"SELECT max(started_at) FROM {RUNS} WHERE source = ? AND status = ? AND NOT dry_run",
        [source, OK],
    ).fetchone()
    return row[0] if row else None


@dataclass
class Missed:
    """What the webhooks of one source missed since a moment (filled by reconciliation)."""

    filled: int = 0
    fetched: int = 0
    runs: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)


def missed_since(con: duckdb.DuckDBPyConnection, since: datetime) -> dict[str, Missed]:
    rows = con.execute(
        f"SELECT source, missing + newer, fetched, filled_by_kind FROM {RUNS} "
        "WHERE NOT dry_run AND started_at >= ?",
        [since],
    ).fetchall()
    missed: dict[str, Missed] = {}
    for source, filled, fetched, kinds in rows:
        entry = missed.setdefault(source, Missed())
        entry.filled += int(filled)
        entry.fetched += int(fetched)
        entry.runs += 1
        entry.by_kind.update({str(k): int(v) for k, v in orjson.loads(kinds).items()})
    return missed
