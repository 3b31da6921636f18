"""docs/sql.md documents every view and every column the catalog has."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from shoppulse.publish.catalog import catalog_path
from shoppulse.publish.publisher import Publisher
from shoppulse.publish.views import VIEWS
from shoppulse.sql import open_catalog

DOC = (Path(__file__).parents[2] / "docs" / "sql.md").read_text(encoding="utf-8")


def test_every_view_and_column_is_documented(tmp_path: Path) -> None:
    db_path = tmp_path / "data" / "shoppulse.duckdb"
    db_path.parent.mkdir()
    live = duckdb.connect(str(db_path))
    try:
        publisher = Publisher(live, db_path)
        publisher.publish()  # an empty live file: every view exists, with its columns
        publisher.close()
    finally:
        live.close()
    con = open_catalog(catalog_path(db_path))
    documented = set(re.findall(r"`([a-z_]+)`", DOC)) | set(
        re.findall(r"^\| ([a-z_]+(?: / [a-z_]+)*) \|", DOC, re.M)
    )
    words = {w for entry in documented for w in entry.split(" / ")}
    missing = []
    for view in (*VIEWS, "publish_info"):
        if view not in words:
            missing.append(view)
        for column, *_rest in con.execute(f"DESCRIBE {view}").fetchall():
            if column not in words:
                missing.append(f"{view}.{column}")
    con.close()
    assert missing == []
