"""The `shoppulse` command: a thin layer over the library."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

from shoppulse import __version__
from shoppulse.commands import (
    dashboard,
    quarantine,
    recompute,
    reconcile,
    scale_out,
    serve,
    settings,
    simulate,
    sources,
    sql,
    up,
)
from shoppulse.help_format import PlainHelpGroup

app = typer.Typer(
    cls=PlainHelpGroup,
    help="ShopPulse: real-time e-commerce metrics from store webhooks.",
    no_args_is_help=True,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"shoppulse {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            is_eager=True,
            callback=_print_version,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """ShopPulse: real-time e-commerce metrics from store webhooks."""


#: Every command, in the order `shoppulse --help` lists them (a command module never imports
#: this one: it defines its functions and groups, and they are added here).
COMMANDS: tuple[tuple[str, Callable[..., None]], ...] = (
    ("serve", serve.serve),
    ("dashboard", dashboard.dashboard_command),
    ("up", up.up),
    ("replay", quarantine.replay),
    ("recompute", recompute.recompute),
    ("reconcile", reconcile.reconcile),
    ("intake", scale_out.intake),
    ("store", scale_out.store),
    ("settings", settings.show_settings),
    ("simulate", simulate.simulate),
    ("sql", sql.sql_command),
    ("export", sql.export_command),
)
#: Every command group (`shoppulse quarantine list`, ...), listed after the commands.
GROUPS: tuple[tuple[str, typer.Typer], ...] = (
    ("quarantine", quarantine.quarantine_app),
    ("log", scale_out.log_app),
    ("sources", sources.sources_app),
)
for _name, _function in COMMANDS:
    app.command(_name)(_function)
for _name, _group in GROUPS:
    app.add_typer(_group, name=_name)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
