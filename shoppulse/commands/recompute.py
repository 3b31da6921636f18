"""`shoppulse recompute`: compare (or rebuild) the incremental metrics against a full recompute."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from shoppulse.commands._errors import fail
from shoppulse.commands._options import ConfigOption, DbOption
from shoppulse.commands._settings import make_settings
from shoppulse.wording import counted

if TYPE_CHECKING:  # imported when the command runs: `shoppulse --help` stays light
    import duckdb

    from metrics.recompute import Difference

out = Console()


def _print_differences(differences: list[Difference]) -> None:
    table = Table(title=f"{counted(len(differences), 'differing aggregate row')}")
    for column in ("table", "only in", "row"):
        table.add_column(column)
    for difference in differences[:50]:
        table.add_row(difference.table, difference.side, ", ".join(map(str, difference.row)))
    out.print(table)
    if len(differences) > 50:
        out.print(f"... and {len(differences) - 50} more")


def recompute(
    config: ConfigOption = None,
    db: DbOption = None,
    check_only: Annotated[
        bool,
        typer.Option("--check", help="Compare and report differences (the default)."),
    ] = True,
    rebuild: Annotated[
        bool,
        typer.Option(
            "--rebuild",
            help="Drop the incremental state and fold every stored event again (service stopped).",
        ),
    ] = False,
) -> None:
    """Compare the incremental metrics with a full recompute from the stored events (--check),
    or rebuild them (--rebuild). The service must be stopped: this opens the live file."""
    from ingest.storage.database import StorageError, open_database
    from metrics.engine import MetricsEngine
    from metrics.recompute import check

    settings = make_settings(config, db)
    path: Path = settings.db_path
    if not path.exists():
        raise fail(f"no database at {path}")
    try:
        con = open_database(path)
    except StorageError as exc:
        raise fail(
            f"{exc} While the service runs, ask it instead: GET /api/v1/metrics/check"
        ) from None
    try:
        engine = MetricsEngine(
            con,
            cart_abandon_after=settings.cart_abandon_after,
            checkout_abandon_after=settings.checkout_abandon_after,
            batch_max=settings.fold_batch_max,
        )
        if rebuild:
            _rebuild(con)
        folded = engine.fold_all(datetime.now(UTC))
        out.print(f"folded {counted(folded, 'pending event')}")
        differences = check(
            engine.con,
            cart_abandon_after=settings.cart_abandon_after,
            checkout_abandon_after=settings.checkout_abandon_after,
        )
    finally:
        con.close()
    if differences:
        _print_differences(differences)
        raise typer.Exit(code=1)
    out.print("[green]incremental metrics equal the full recompute[/]")


def _rebuild(con: duckdb.DuckDBPyConnection) -> None:
    from metrics.schema import (
        CARTS,
        CHECKOUTS,
        CURSOR,
        FOLDS,
        FUNNEL_DELTAS,
        ORDERS,
        REFUNDS,
        SALES_DELTAS,
    )

    con.execute("BEGIN")
    state = [
        f"{table}_{part}"
        for table in (ORDERS, REFUNDS, CARTS, CHECKOUTS)
        for part in ("hot", "cold")
    ]
    # The history goes too: fold numbers start again, and every change is refolded now.
    for table in (*state, SALES_DELTAS, FUNNEL_DELTAS, FOLDS):
        con.execute(f"DELETE FROM {table}")
    con.execute(
        f"UPDATE {CURSOR} SET event_seq = 0, fold_seq = 0, evaluated_at = NULL, "
        "watermark_received_at = NULL, state_event_seq = 0, state_fold_seq = 0, "
        "state_evaluated_at = NULL, state_watermark_received_at = NULL"
    )
    con.execute("COMMIT")
    out.print("incremental state cleared; folding every stored event again")
