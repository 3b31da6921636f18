"""The command-line options several commands share, each with its help text."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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
