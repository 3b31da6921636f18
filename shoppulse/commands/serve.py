"""`shoppulse serve`: the whole pipeline in one process (intake, metrics, the read API)."""

from __future__ import annotations

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
