"""`shoppulse sql` and `shoppulse export`: analysts' SQL over the published views.

Both work whether or not the service runs. While it runs, they read the catalog it publishes
(`analytics.duckdb` beside the live file). While it is stopped, they first publish from the
live file (opened read-only for one short cycle) so the views show everything stored.
"""

from __future__ import annotations

import csv
import sys
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console

from shoppulse.commands._errors import err, fail
from shoppulse.commands._options import ConfigOption, DbOption
from shoppulse.commands._result_display import cell, print_result
from shoppulse.commands._settings import make_settings
from shoppulse.wording import counted


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"
    parquet = "parquet"


def _prepare(config: Path | None, db: Path | None) -> Path:
    import duckdb

    from shoppulse.publish.catalog import catalog_path
    from shoppulse.publish.worker import refresh_stopped

    settings = make_settings(config, db)
    try:
        mode = refresh_stopped(settings.db_path)
    except duckdb.Error as exc:
        raise fail(f"could not publish from {settings.db_path}: {exc}") from None
    if mode == "catalog":
        err.print(f"[dim]no live database at {settings.db_path}; using the published catalog[/]")
    return catalog_path(settings.db_path)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)  # exact: money is never a float
    raise TypeError(f"cannot encode {type(value).__name__}")


def sql_command(
    statement: Annotated[str, typer.Argument(help="The query (SELECT, WITH, EXPLAIN, ...).")],
    config: ConfigOption = None,
    db: DbOption = None,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", help="Output format.")
    ] = OutputFormat.table,
    output: Annotated[
        Path | None, typer.Option("--output", help="Write to this file instead of stdout.")
    ] = None,
) -> None:
    """Query the live data with SQL (read-only views; see docs/sql.md)."""
    import duckdb

    from shoppulse.sql import SqlError, open_catalog, query

    if output_format is OutputFormat.parquet and output is None:
        raise fail("--format parquet needs --output FILE")
    catalog = _prepare(config, db)
    try:
        con = open_catalog(catalog)
        relation = query(con, statement)
    except SqlError as exc:
        raise fail(str(exc)) from None
    if relation is None:
        return
    try:
        if output_format is OutputFormat.parquet:
            assert output is not None
            import pyarrow.parquet as pq

            pq.write_table(relation.to_arrow_table(), output)
            return
        names = list(relation.columns)
        rows = relation.fetchall()
    except duckdb.Error as exc:
        raise fail(str(exc).strip()) from None
    finally:
        con.close()
    stream = output.open("w", newline="", encoding="utf-8") if output else sys.stdout
    try:
        if output_format is OutputFormat.csv:
            writer = csv.writer(stream)
            writer.writerow(names)
            writer.writerows([cell(v) for v in row] for row in rows)
        elif output_format is OutputFormat.json:
            records = [dict(zip(names, row, strict=True)) for row in rows]
            stream.write(
                orjson.dumps(records, default=_json_default, option=orjson.OPT_INDENT_2).decode()
                + "\n"
            )
        else:
            layout = print_result(Console(file=stream, width=max(80, Console().width)), names, rows)
            if not output:
                shown = " (one block per row: too wide for a table)" if layout == "records" else ""
                err.print(f"[dim]{counted(len(rows), 'row')}{shown}[/]")
    finally:
        if output:
            stream.close()


def export_command(
    to: Annotated[Path, typer.Option("--to", help="Directory for the Parquet files.")],
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """Write a consistent Parquet snapshot of every view (one file per view) for notebooks
    and BI tools."""
    from shoppulse.sql import SqlError, export, open_catalog

    catalog = _prepare(config, db)
    try:
        con = open_catalog(catalog, lockdown=False)
    except SqlError as exc:
        raise fail(str(exc)) from None
    try:
        manifest = export(con, to)
    finally:
        con.close()
    total = sum(manifest["rows"].values())
    err.print(
        f"exported {counted(len(manifest['rows']), 'view')} ({counted(total, 'row')}) to {to} "
        f"(published {manifest['snapshot']['published_at']})"
    )
