"""The report of one reconciliation run of one source."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ingest.reconcile.compare import Verdict

#: A run's status: running, then ok, failed (the API or the database failed; the message says
#: how) or credentials_rejected (401/403: fix the key, retrying cannot help).
RUNNING, OK, FAILED, CREDENTIALS_REJECTED = "running", "ok", "failed", "credentials_rejected"

#: Record error reasons kept per run (the count is always complete).
ERRORS_LISTED = 20


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment is not None else None


@dataclass
class RunReport:
    source: str
    since: datetime
    started_at: datetime
    trigger: str = "manual"  # or "schedule"
    dry_run: bool = False
    run_id: int = 0
    finished_at: datetime | None = None
    status: str = RUNNING
    message: str | None = None
    fetched: int = 0
    current: int = 0
    missing: int = 0  # filled (dry run: would be)
    newer: int = 0  # filled (dry run: would be)
    older: int = 0  # ignored
    errors: int = 0  # could not be mapped: quarantined with the reason
    total: int | None = None  # the listing's size, when the API tells it
    filled_kinds: Counter[str] = field(default_factory=Counter)
    error_reasons: list[str] = field(default_factory=list)

    @property
    def filled(self) -> int:
        return self.missing + self.newer

    def count(self, verdict: Verdict, kind: str, reason: str | None = None) -> None:
        self.fetched += 1
        if verdict is Verdict.ERROR:
            self.errors += 1
            if reason and len(self.error_reasons) < ERRORS_LISTED:
                self.error_reasons.append(reason)
            return
        setattr(self, verdict.value, getattr(self, verdict.value) + 1)
        if verdict in (Verdict.MISSING, Verdict.NEWER):
            self.filled_kinds[kind] += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "source": self.source,
            "trigger": self.trigger,
            "dry_run": self.dry_run,
            "since": _iso(self.since),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "status": self.status,
            "message": self.message,
            "fetched": self.fetched,
            "current": self.current,
            "missing": self.missing,
            "newer": self.newer,
            "older": self.older,
            "errors": self.errors,
            "filled": self.filled,
            "filled_by_kind": dict(self.filled_kinds),
            "total": self.total,
            "error_reasons": self.error_reasons,
        }
