"""Fuzz-suite fixtures: a session-wide count of generated cases, reported at the end of the run.

The counts are printed in pytest's terminal summary and written to
test-artifacts/fuzz-counts.json (test name -> cases run).
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

CASES: Counter[str] = Counter()


@pytest.fixture(scope="session")
def fuzz_cases() -> Counter[str]:
    """Add one per generated case: `fuzz_cases[label] += 1`."""
    return CASES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not CASES:
        return
    total = sum(CASES.values())
    path = terminalreporter.config.rootpath / "test-artifacts" / "fuzz-counts.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps({"total": total, "cases": dict(sorted(CASES.items()))}, indent=2) + "\n",
        encoding="utf-8",
    )
    terminalreporter.write_sep("-", f"fuzz cases run: {total} (counts in {path.name})")
    for label, count in sorted(CASES.items()):
        terminalreporter.write_line(f"{count:6d}  {label}")
