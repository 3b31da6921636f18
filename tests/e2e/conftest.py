"""Fixtures for end-to-end tests: the real `shoppulse serve` in a subprocess on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from tests.conftest import SECRET
from tests.e2e.server import ServiceFactory, ServiceProcess


@pytest.fixture
def service_factory(tmp_path: Path) -> Iterator[ServiceFactory]:
    """Make (not start) services, each in its own directory; all are killed at teardown.

    The default sources file has one Shopify source `acme` signed with `tests.conftest.SECRET`.
    """
    made: list[ServiceProcess] = []

    def make(
        sources: Mapping[str, tuple[str, ...]] | None = None,
        *,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> ServiceProcess:
        workdir = tmp_path / f"service-{len(made) + 1}"
        workdir.mkdir()
        service = ServiceProcess.for_sources(
            workdir, sources or {"acme": ("shopify", SECRET)}, args=args, env=env
        )
        made.append(service)
        return service

    try:
        yield make
    finally:
        for service in made:
            service.kill()
