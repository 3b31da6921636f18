"""What a publishing test starts from: a migrated live file and an empty published directory
with its manifest, all real, in a temporary directory."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from shoppulse.database import open_database
from shoppulse.publish.manifest import STATE_FILE, Manifest


@dataclass
class Published:
    live: duckdb.DuckDBPyConnection
    root: Path
    manifest: Manifest


@pytest.fixture
def published(tmp_path: Path) -> Iterator[Published]:
    live = open_database(tmp_path / "live.duckdb")
    live.execute("SET TimeZone = 'UTC'")
    root = tmp_path / "analytics"
    root.mkdir()
    manifest = Manifest(root / STATE_FILE)
    try:
        yield Published(live, root, manifest)
    finally:
        manifest.close()
        live.close()
