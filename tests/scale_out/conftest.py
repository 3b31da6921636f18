"""Fixtures of the scale-out tests: real nats-server processes and the real roles."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from tests.conftest import SECRET
from tests.scale_out.nats import NatsNode, create_stream, single_node
from tests.scale_out.roles import RoleProcess, sources_file

DEFAULT_SOURCES: Mapping[str, tuple[str, ...]] = {"acme": ("shopify", SECRET)}

RoleFactory = Callable[..., RoleProcess]


@pytest.fixture
def nats_node(tmp_path: Path) -> Iterator[NatsNode]:
    """One nats-server with JetStream and the ShopPulse stream (R1, default limits)."""
    node = single_node(tmp_path / "nats").start()
    try:
        create_stream(node.url)
        yield node
    finally:
        node.stop()


@pytest.fixture
def bare_nats(tmp_path: Path) -> Iterator[NatsNode]:
    """One nats-server with JetStream and no stream."""
    node = single_node(tmp_path / "nats-bare").start()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture
def roles(tmp_path: Path) -> Iterator[RoleFactory]:
    """Make (not start) intake and store processes; every one is killed at teardown."""
    made: list[RoleProcess] = []
    config = sources_file(tmp_path / "config", DEFAULT_SOURCES)

    def make(
        role: str, log_url: str, *, args: Sequence[str] = (), env: Mapping[str, str] | None = None
    ) -> RoleProcess:
        process = RoleProcess(
            role, tmp_path / f"{role}-{len(made) + 1}", config, log_url, args=args, env=env
        )
        made.append(process)
        return process

    try:
        yield make
    finally:
        for process in made:
            process.kill()
