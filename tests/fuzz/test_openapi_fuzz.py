"""Schemathesis against the service's own OpenAPI schema, on a real `shoppulse serve`.

Every operation of the schema (whatever routes exist when the suite runs) gets schema-valid and
schema-violating requests (Schemathesis' positive and negative modes). The outcome must be: never
a 5xx, every error in the common error body, and a service still up and healthy at the end. The
service runs with an API token, and the requests carry it, so the protected routes are reached.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from shoppulse.service import create_app
from shoppulse.settings import Settings
from tests.e2e.server import ServiceProcess
from tests.fuzz.adapters import PROVIDER_NAMES, SECRET

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

TOKEN = "fuzz-api-token-0001"
#: Cases per operation and mode: the profile's default (30, or 300 when thorough).
EXAMPLES = settings().max_examples


def _schema() -> Any:
    app = create_app(Settings(), {})  # only builds the routes; nothing is opened
    return schemathesis.openapi.from_dict(app.openapi())


SCHEMA = _schema()
OPERATIONS = {result.ok().label: result.ok() for result in SCHEMA.get_all_operations()}
#: Schema-violating requests exist only for operations that take input.
CASES = [
    (label, mode)
    for label, operation in sorted(OPERATIONS.items())
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE
    or any(
        len(part)
        for part in (operation.path_parameters, operation.query, operation.headers, operation.body)
    )
]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    sources = {name: (name, SECRET) for name in PROVIDER_NAMES}
    workdir = tmp_path_factory.mktemp("openapi")
    service = ServiceProcess.for_sources(workdir, sources, env={"SHOPPULSE_API_TOKEN": TOKEN})
    with service:
        yield service
    assert "Traceback" not in service.log_tail(400), service.log_tail()


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        http.headers["Authorization"] = f"Bearer {TOKEN}"
        yield http


def assert_answer(response: requests.Response) -> None:
    assert response.status_code < 500, f"{response.status_code}: {response.text[:500]}"
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"}, body
        error = body["error"]
        assert error["status"] == response.status_code and error["code"] and error["message"]


@pytest.mark.parametrize(("label", "mode"), CASES, ids=[f"{m.value} {label}" for label, m in CASES])
def test_no_operation_answers_5xx(
    label: str,
    mode: GenerationMode,
    running: ServiceProcess,
    session: requests.Session,
    fuzz_cases: Counter[str],
) -> None:
    operation = OPERATIONS[label]

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(case=operation.as_strategy(mode))
    def run(case: Any) -> None:
        response = case.call(base_url=running.base_url, session=session, timeout=30)
        fuzz_cases[f"openapi {mode.value}: {label}"] += 1
        assert_answer(response)

    try:
        run()
    except Unsatisfiable:
        if mode is GenerationMode.POSITIVE:
            raise
        pytest.skip(f"{label} takes no input that could violate its schema")
    assert running.running
    with running.client() as client:
        assert client.get("/healthz").status_code == 200


#: Window bounds at the edges of what a datetime holds: the fuzzer's finds, kept as regressions
#: (a `to` of year 1, or one that is past year 9999 in UTC, once answered 500).
EDGE_WINDOWS = [
    {"to": "0001-01-01T00:00:00Z"},
    {"to": "0001-01-01T00:00:00+01:00"},
    {"to": "9999-12-31T23:59:59-01:00"},
    {"from": "9999-12-31T23:59:59Z"},
    {"from": "0001-01-01T00:00:00Z", "to": "9999-12-31T23:59:59Z"},
    {"to": "0001-01-01T00:00:00"},
]


@pytest.mark.parametrize("params", EDGE_WINDOWS, ids=[str(p) for p in EDGE_WINDOWS])
@pytest.mark.parametrize("path", ["/api/v1/metrics", "/api/v1/metrics/timeseries?metric=orders"])
def test_window_bounds_at_the_edges_of_time(
    path: str, params: dict[str, str], client: TestClient
) -> None:
    response = client.get(path, params=params)
    assert response.status_code in (200, 422), response.text
    if response.status_code == 422:
        assert response.json()["error"]["code"] == "invalid_request"
