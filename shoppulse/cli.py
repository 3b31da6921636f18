"""The `shoppulse` command: a thin layer over the library."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from ingest.sources import ConfigError, Source, check_secrets, load_sources
from shoppulse import __version__
from shoppulse.help_format import PlainHelpGroup
from shoppulse.settings import Settings

app = typer.Typer(
    cls=PlainHelpGroup,
    help="ShopPulse: real-time e-commerce metrics from store webhooks.",
    no_args_is_help=True,
    add_completion=False,
)
err = Console(stderr=True)


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


ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="Sources file (TOML). Default: $SHOPPULSE_CONFIG."),
]
DbOption = Annotated[
    Path | None,
    typer.Option(
        "--db", help="Live DuckDB file. Default: $SHOPPULSE_DB_PATH or data/shoppulse.duckdb."
    ),
]


def make_settings(config: Path | None = None, db: Path | None = None, **overrides: Any) -> Settings:
    """Settings from the environment, with command-line options on top."""
    values: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    if config is not None:
        values["config"] = config
    if db is not None:
        values["db_path"] = db
    try:
        return Settings(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])} (SHOPPULSE_"
            f"{'_'.join(str(p) for p in error['loc']).upper()}): {error['msg']}"
            for error in exc.errors()
        )
        raise fail(escape(f"invalid setting: {problems}")) from None


def load_configured_sources(settings: Settings) -> dict[str, Source]:
    if settings.config is None:
        raise ConfigError(
            "no sources file: pass --config FILE or set SHOPPULSE_CONFIG (see README, "
            "'Connect your store')"
        )
    return load_sources(settings.config)


def fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=2)


ListenHostOption = Annotated[
    str | None, typer.Option("--host", help="Listen address (default 127.0.0.1).")
]
ListenPortOption = Annotated[int | None, typer.Option("--port", help="Listen port (default 8000).")]
InsecureDemoOption = Annotated[
    bool,
    typer.Option(
        "--insecure-demo",
        help="Accept sources without a secret and do not verify their deliveries. "
        "Local demos only.",
    ),
]
LogLevelOption = Annotated[str, typer.Option(help="debug, info, warning or error.")]
SslCertfileOption = Annotated[
    Path | None,
    typer.Option(
        "--ssl-certfile",
        help="Serve HTTPS with this PEM certificate chain (needs --ssl-keyfile). "
        "Default: $SHOPPULSE_SSL_CERTFILE, else plain HTTP.",
    ),
]
SslKeyfileOption = Annotated[
    Path | None,
    typer.Option(
        "--ssl-keyfile",
        help="PEM private key of the certificate. Default: $SHOPPULSE_SSL_KEYFILE.",
    ),
]


@app.command()
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


def server_settings(
    log_level: str, config: Path | None = None, db: Path | None = None, **overrides: Any
) -> Settings:
    """The settings of a server command, once its logging is set up at `log_level`."""
    from shoppulse.logs import configure_logging

    configure_logging(log_level)
    return make_settings(config, db, **overrides)


def checked_sources(settings: Settings) -> dict[str, Source]:
    """The configured sources of a process that takes webhooks, with their secrets checked (and
    the loud warning of --insecure-demo); exits with a clear message when they cannot be used."""
    if (settings.ssl_certfile is None) != (settings.ssl_keyfile is None):
        raise fail("HTTPS needs both --ssl-certfile and --ssl-keyfile")
    try:
        sources = load_configured_sources(settings)
        unsigned = check_secrets(sources, insecure_demo=settings.insecure_demo)
    except ConfigError as exc:
        raise fail(str(exc)) from None
    if settings.insecure_demo:
        err.print(
            "[bold yellow]WARNING: --insecure-demo:[/] deliveries to "
            f"{', '.join(unsigned) or 'no source'} are accepted WITHOUT signature checks. "
            "Anyone who can reach this port can write data. Use only for a local demo."
        )
    return sources


def listen_url(settings: Settings) -> str:
    return f"{'https' if settings.ssl_certfile else 'http'}://{settings.host}:{settings.port}"


def run_app(application: Any, settings: Settings) -> None:
    """Serve `application` with uvicorn as every ShopPulse server does (limits, TLS, shutdown)."""
    import uvicorn

    uvicorn.run(
        application,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        timeout_keep_alive=5,
        timeout_graceful_shutdown=10,
        h11_max_incomplete_event_size=64 * 1024,
        ssl_certfile=str(settings.ssl_certfile) if settings.ssl_certfile else None,
        ssl_keyfile=str(settings.ssl_keyfile) if settings.ssl_keyfile else None,
    )


# Command modules register themselves on `app` when imported (one line each, keep sorted).
from shoppulse.commands import _registry  # noqa: E402, F401


def main() -> None:
    app()


if __name__ == "__main__":
    main()
