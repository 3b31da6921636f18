"""How a command reports: progress and errors on standard error, and one form for every error."""

from __future__ import annotations

import typer
from rich.console import Console

#: Standard error, for progress and errors (standard output carries the command's result).
err = Console(stderr=True)


def fail(message: str) -> typer.Exit:
    """Print `message` as an error and return the exit (code 2) for the caller to raise."""
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=2)
