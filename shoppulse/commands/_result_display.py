"""How `shoppulse sql` shows a result in the terminal: a table when it fits, else one record
per row (like psql's expanded display), so that no value is ever cut short."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text


def cell(value: Any) -> str:
    """A value as text: NULL empty, times in ISO 8601, everything else as `str` (exact)."""
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _table(names: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    table = Table(*names, show_lines=False)
    for row in rows:
        table.add_row(*(Text(cell(v)) for v in row))
    return table


def _records(console: Console, names: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    for number, row in enumerate(rows, start=1):
        console.rule(Text(f"row {number}"), align="left", style="dim")
        record = Table.grid(padding=(0, 2))
        record.add_column(style="bold", no_wrap=True)
        record.add_column(overflow="fold")
        for name, value in zip(names, row, strict=True):
            record.add_row(Text(name), Text(cell(value)))
        console.print(record)


def print_result(console: Console, names: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Print `rows` whole within the console's width; returns the layout used ("table" or
    "records": one block per row, each column on its own line, when a table would not fit)."""
    table = _table(names, rows)
    natural = console.measure(table, options=console.options.update_width(1_000_000)).maximum
    if natural <= console.width:
        console.print(table)
        return "table"
    _records(console, names, rows)
    return "records"
