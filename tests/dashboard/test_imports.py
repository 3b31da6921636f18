"""The dashboard reads only the service's HTTP API: it imports nothing that opens the database."""

from __future__ import annotations

import ast
from pathlib import Path

import dashboard

OURS = ("dashboard", "ingest", "metrics", "shoppulse")
#: The only module of ours outside the dashboard it may use: pure metric definitions.
ALLOWED = {"metrics.definitions"}


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
