"""SQL access for analysts: read-only queries over the published catalog, and exports.

The service publishes immutable Parquet files beside the live database and a small catalog,
`<db dir>/analytics.duckdb`, that holds nothing but views over those files (see
`shoppulse.publish`: its datasets, views and catalog). This module is the analysts' side: how a
read-only connection to the catalog is opened, and the `sql` and `export` commands' work.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from shoppulse.publish.catalog import files_location
from shoppulse.publish.datasets import quote
from shoppulse.publish.views import VIEWS

#: Statement types a `shoppulse sql` query may contain: reading only.
_READ_STATEMENTS = frozenset({"SELECT", "EXPLAIN"})


class SqlError(Exception):
    """The query was refused or failed; the message says why."""


def open_catalog(catalog: Path, *, lockdown: bool = True) -> duckdb.DuckDBPyConnection:
    """A read-only connection whose default schema holds the analyst views of `catalog`.

    The catalog is attached READ_ONLY to an in-memory database, so every call sees the newest
    catalog (no in-process cache). With `lockdown`, the connection may read only the published
    Parquet files: no other file, no extension install, no configuration change.
    """
    if not catalog.exists():
        raise SqlError(
            f"no published catalog at {catalog}: start the service (`shoppulse serve`) or run "
            "`shoppulse sql` with the same --db while it is stopped"
        )
    con = duckdb.connect(":memory:")
    try:
        con.execute(f"ATTACH {quote(str(catalog))} AS analytics (READ_ONLY)")
        here = files_location(catalog)
        written = _written_location(con)
        if written is not None and written != here:
            _repoint(con, written, here)
        else:
            con.execute("USE analytics")
        con.execute("SET TimeZone = 'UTC'")
        if lockdown:
            allowed = here + os.sep
            con.execute(f"SET allowed_directories = [{quote(allowed)}]")
            con.execute("SET enable_external_access = false")
            con.execute("SET autoinstall_known_extensions = false")
            con.execute("SET autoload_known_extensions = false")
            con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


def _written_location(con: duckdb.DuckDBPyConnection) -> str | None:
    """The directory the attached catalog's views name their files in (None: a catalog written
    before it was recorded)."""
    try:
        rows = con.execute("SELECT location FROM analytics.publish_info").fetchall()
    except duckdb.BinderException:
        return None
    return str(rows[0][0]) if rows and rows[0][0] else None


def _repoint(con: duckdb.DuckDBPyConnection, written: str, here: str) -> None:
    """Recreate the attached catalog's views in `con`'s own in-memory database, naming the files
    in `here` instead of `written` (the data folder was moved or copied since the catalog was
    written), and make them the default schema."""
    old = re.compile(re.escape(quote(written)[:-1]) + r"(?=[/'])")
    new = quote(here)[:-1]
    views = con.execute(
        "SELECT view_name, sql FROM duckdb_views() WHERE database_name = 'analytics' "
        "AND NOT internal"
    ).fetchall()
    order = list(VIEWS)  # creation order: a view comes after the views it reads
    views.sort(key=lambda v: order.index(v[0]) if v[0] in order else len(order))
    con.execute("USE memory")
    for _, statement in views:
        con.execute(old.sub(lambda _: new, str(statement)))
    con.execute("DETACH analytics")


def check_read_only(sql: str) -> None:
    """Refuse anything but SELECT-like statements (COPY, ATTACH, INSTALL, SET, ...)."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise SqlError(str(exc)) from None
    if not statements:
        raise SqlError("no SQL statement given")
    for statement in statements:
        kind = str(statement.type).rsplit(".", 1)[-1].upper()
        if kind not in _READ_STATEMENTS:
            raise SqlError(
                f"only queries are allowed (SELECT, WITH, EXPLAIN, DESCRIBE, SHOW); "
                f"refused a {kind} statement"
            )


def query(con: duckdb.DuckDBPyConnection, sql: str) -> duckdb.DuckDBPyRelation | None:
    """Run a read-only query; the relation of its last statement."""
    check_read_only(sql)
    try:
        return con.sql(sql)
    except duckdb.Error as exc:
        raise SqlError(str(exc).strip()) from None


def export(con: duckdb.DuckDBPyConnection, directory: Path) -> dict[str, Any]:
    """Write every analyst view of `con`'s snapshot as `<directory>/<view>.parquet`.

    All views are read from one catalog, so the files agree with each other. A manifest
    (`manifest.json`) says when the snapshot was published and how many rows each file holds.
    """
    directory.mkdir(parents=True, exist_ok=True)
    info_row = con.execute("SELECT * FROM publish_info").fetchall()[0]
    info_names = [d[0] for d in con.execute("SELECT * FROM publish_info LIMIT 0").description]
    info = {
        name: value.isoformat() if isinstance(value, datetime) else value
        for name, value in zip(info_names, info_row, strict=True)
    }
    con.execute("BEGIN TRANSACTION")
    rows: dict[str, int] = {}
    try:
        for view in (*VIEWS, "publish_info"):
            target = directory / f"{view}.parquet"
            temporary = directory / f".{view}.parquet.tmp"
            con.execute(f"COPY (SELECT * FROM {view}) TO {quote(str(temporary))} (FORMAT parquet)")
            os.replace(temporary, target)
            count = con.execute(f"SELECT count(*) FROM read_parquet({quote(str(target))})")
            rows[view] = int(count.fetchall()[0][0])
    finally:
        con.execute("COMMIT")
    manifest = {
        "exported_at": datetime.now(UTC).isoformat(),
        "snapshot": info,
        "files": {view: f"{view}.parquet" for view in rows},
        "rows": rows,
    }
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
