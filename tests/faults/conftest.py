"""Fixtures of the fault tests: one real `shoppulse serve` shared by the tests that need one."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pytest

from tests.conftest import SECRET
from tests.e2e.server import ServiceProcess

#: Settings of the shared real service: a short body read timeout and a small in-flight limit,
#: so that stalls and overload show within seconds.
BODY_TIMEOUT = 2.0
MAX_IN_FLIGHT = 8


@pytest.fixture(scope="package")
def acknowledged() -> set[str]:
    """Delivery ids the shared service answered 2xx; all must be in its database at the end."""
    return set()


@pytest.fixture(scope="package")
def real_service(
    tmp_path_factory: pytest.TempPathFactory, acknowledged: set[str]
) -> Iterator[ServiceProcess]:
    """One service for the package (a start takes seconds); tests compare counts before/after.

    After the last test it is stopped and its database must hold every acknowledged delivery.
    """
    process = ServiceProcess.for_sources(
        tmp_path_factory.mktemp("real-service"),
        {"acme": ("shopify", SECRET)},
        env={
            "SHOPPULSE_BODY_READ_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
            "SHOPPULSE_MAX_IN_FLIGHT": str(MAX_IN_FLIGHT),
        },
    )
    with process:
        yield process
    with duckdb.connect(str(process.db), read_only=True) as con:
        stored = {row[0] for row in con.execute("SELECT delivery_id FROM deliveries").fetchall()}
    missing = acknowledged - stored
    assert not missing, (
        f"{len(missing)} acknowledged deliveries are not stored: {sorted(missing)[:5]}"
    )
