"""One real `shoppulse serve` on 127.0.0.1 for the dashboard's tests, with a few Shopify sources.

Tests that need exact figures each send to a source of their own and read with that source as
the filter; tests of the whole page compare it with what the API answers at the same moment.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import SECRET
from tests.dashboard.store import Store
from tests.e2e.server import ServiceProcess

SOURCES = ("acme", "shop-a", "shop-b", "shop-c", "shop-d", "sample-shop")
DISPLAY_TIMEZONE = "Europe/Berlin"


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    workdir = tmp_path_factory.mktemp("dashboard-service")
    # the all-sources view follows a display zone other than UTC, as a store owner's would
    process = ServiceProcess.for_sources(
        workdir,
        {source: ("shopify", SECRET) for source in SOURCES},
        env={"SHOPPULSE_DISPLAY_TIMEZONE": DISPLAY_TIMEZONE},
    )
    with process:
        yield process


@pytest.fixture(scope="session")
def http(service: ServiceProcess) -> Iterator[httpx.Client]:
    with service.client() as client:
        yield client


@pytest.fixture
def store(http: httpx.Client) -> Store:
    """The shared source `acme`."""
    return Store(http, "acme")
