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
    settings,
    simulate,
    sources,
    sql,
)
from shoppulse.commands._errors import err
from shoppulse.commands._options import (
    ConfigOption,
    DbOption,
    InsecureDemoOption,
    ListenHostOption,
    ListenPortOption,
    LogLevelOption,
    SslCertfileOption,
    SslKeyfileOption,
)
from shoppulse.commands._server import checked_sources, listen_url, run_app, server_settings
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


def serve(
    config: ConfigOption = None,
    db: DbOption = None,
    host: ListenHostOption = None,
    port: ListenPortOption = None,
    insecure_demo: InsecureDemoOption = False,
    log_level: LogLevelOption = "info",
    ssl_certfile: SslCertfileOption = None,
    ssl_keyfile: SslKeyfileOption = None,
) -> None:
    """Run the pipeline service: webhook intake, metrics and the read API."""
    from shoppulse.service import create_app

    settings = server_settings(
        log_level,
        config,
        db,
        host=host,
        port=port,
        insecure_demo=insecure_demo or None,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
    )
    sources = checked_sources(settings)
    application = create_app(settings, sources)
    err.print(
        f"ShopPulse listening on {listen_url(settings)} "
        f"(database {settings.db_path}; sources: {', '.join(sources) or 'none'})"
    )
    run_app(application, settings)


#: Every command, in the order `shoppulse --help` lists them (a command module never imports
#: this one: it defines its functions and groups, and they are added here).
COMMANDS: tuple[tuple[str, Callable[..., None]], ...] = (
    ("serve", serve),
    ("dashboard", dashboard.dashboard_command),
    ("up", dashboard.up),
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
