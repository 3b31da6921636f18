"""The dashboard reads only the service's HTTP API: it imports nothing that opens the database."""

from __future__ import annotations

import ast
from pathlib import Path

import dashboard

OURS = ("dashboard", "ingest", "metrics", "shoppulse")
#: The only modules of ours outside the dashboard it may use: the pure metric definitions and the
#: API's models of its answers (pydantic only).
ALLOWED = {"metrics.definitions", "metrics.responses"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_dashboard_imports_only_its_read_contract_and_never_duckdb() -> None:
    modules = sorted(Path(dashboard.__file__).parent.glob("*.py"))
    assert {path.name for path in modules} >= {"app.py", "data.py"}
    for path in modules:
        imported = _imports(path)
        assert not {name for name in imported if name.split(".")[0] == "duckdb"}, path.name
        foreign = {
            name
            for name in imported
            if name.split(".")[0] in OURS and name.split(".")[0] != "dashboard"
        }
        assert foreign <= ALLOWED, f"{path.name} imports {foreign - ALLOWED}"
    http_users = [path.name for path in modules if "httpx" in _imports(path)]
    assert http_users == ["data.py"], "one module reads the service"


def test_the_read_contract_it_shares_with_the_api_opens_nothing() -> None:
    metrics_dir = Path(dashboard.__file__).parent.parent / "metrics"
    for name in sorted(ALLOWED):
        imported = _imports(metrics_dir / f"{name.split('.')[1]}.py")
        ours = {n for n in imported if n.split(".")[0] in OURS}
        assert ours <= ALLOWED, f"{name} imports {ours - ALLOWED}"
        assert {n.split(".")[0] for n in imported} - {*OURS, "pydantic"} <= {
            "__future__",
            "dataclasses",
            "typing",
        }, name
