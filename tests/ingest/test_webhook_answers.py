"""README's status table, the OpenAPI description and the answers the code can give, in step.

`ingest.api.WEBHOOK_ANSWERS` lists every answer of `POST /webhooks/{source_id}`. This test reads
the other three places and holds each to it:

- README's table under "Every answer of `POST /webhooks/{source}` means one thing";
- the endpoint's responses in the service's `/openapi.json`;
- the code: every error class raised and every literal status given by the modules that answer
  the endpoint (read from their source, so a new answer cannot be added without this failing),
  and the status of each storage outcome.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from fastapi.testclient import TestClient

from ingest import errors
from ingest.api import WEBHOOK_ANSWERS
from ingest.intake import OUTCOME_STATUS

ROOT = Path(__file__).resolve().parents[2]
#: The modules that produce the endpoint's answers (the fast path and the intake it calls).
ANSWERING = (
    ROOT / "ingest" / "intake.py",
    ROOT / "ingest" / "responses.py",
    ROOT / "shoppulse" / "webhook_route.py",
)
ANSWERS = {(status, code) for status, code, _ in WEBHOOK_ANSWERS}


def readme_table() -> set[tuple[int, str]]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("Every answer of `POST /webhooks/{source}` means one thing:", 1)[1]
    table = section.strip().split("\n\n", 1)[0].splitlines()
    assert table[0] == "| status | code | meaning |", table[0]
    rows = set()
    for line in table[2:]:
        status, code, meaning = (cell.strip() for cell in line.strip("|").split("|", 2))
        match = re.fullmatch(r"(\d{3})( \+ `Retry-After`)?", status)
        assert match and re.fullmatch(r"`[a-z_]+`", code) and meaning, line
        rows.add((int(match.group(1)), code.strip("`")))
    return rows


def error_classes() -> dict[str, type[errors.IngestError]]:
    return {
        name: value
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, errors.IngestError)
    }


def answers_in_code() -> set[tuple[int, str]]:
    """(status, code) of every error raised and every literal answer in the answering modules."""
    classes = error_classes()
    found = {(status, outcome.value) for outcome, status in OUTCOME_STATUS.items()}
    for path in ANSWERING:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
                continue
            name, args = node.func.id, node.args
            if name in classes and name != "IngestError":
                found.add((classes[name].status, classes[name].code))
            elif name in ("json_answer", "error_answer") and args:
                if not isinstance(args[0], ast.Constant):
                    continue  # a status passed through (an error's own, or OUTCOME_STATUS)
                status = args[0].value
                assert isinstance(status, int), ast.unparse(node)
                if name == "error_answer":
                    code = args[1]
                    assert isinstance(code, ast.Constant), ast.unparse(node)
                    assert isinstance(code.value, str), ast.unparse(node)
                    found.add((status, code.value))
                else:
                    body = args[1]
                    assert isinstance(body, ast.Dict), ast.unparse(node)
                    fields = {
                        key.value: value
                        for key, value in zip(body.keys, body.values, strict=True)
                        if isinstance(key, ast.Constant)
                    }
                    status_field = fields["status"]
                    assert isinstance(status_field, ast.Constant), ast.unparse(node)
                    assert isinstance(status_field.value, str), ast.unparse(node)
                    found.add((status, status_field.value))
    return found


def test_readme_lists_every_answer_and_nothing_else() -> None:
    assert readme_table() == ANSWERS


def test_the_code_gives_exactly_the_listed_answers() -> None:
    assert answers_in_code() == ANSWERS


def test_openapi_describes_every_status_and_code(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    responses = spec["paths"]["/webhooks/{source_id}"]["post"]["responses"]
    # FastAPI adds its request-validation answer to every route with a parameter; this one never
    # gives it (any string is a source id, and the fast path answers before FastAPI's router).
    documented = {int(status) for status in responses if status.isdigit()} - {422}
    assert documented == {status for status, _ in ANSWERS}
    for status, code in ANSWERS:
        assert f"`{code}`" in responses[str(status)]["description"], (status, code)
