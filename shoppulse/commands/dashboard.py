"""`shoppulse dashboard`: the live dashboard (Streamlit) against a running service.

Given the same `--db` (or `--config`/environment) as `serve` on the same machine, it finds the
service's API in the discovery record the service writes beside its live database.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

import dashboard
from shoppulse.commands._errors import err, fail
from shoppulse.commands._options import ConfigOption, DbOption
from shoppulse.commands._processes import (
    Children,
    Stop,
    port_in_use,
    signals_ignored,
    stop_signals,
)
from shoppulse.commands._settings import make_settings
from shoppulse.discovery import read_discovery
from shoppulse.settings import Settings

APP_PATH = Path(dashboard.__file__).resolve().parent / "app.py"
DEFAULT_API_URL = "http://127.0.0.1:8000"
DEFAULT_DASHBOARD_PORT = 8501

PortOption = Annotated[
    int, typer.Option("--port", min=1, max=65535, help="Port the dashboard listens on.")
]
HostOption = Annotated[str, typer.Option("--host", help="Address the dashboard listens on.")]


def resolve_api_url(api: str | None, settings: Settings) -> tuple[str, str]:
    """The service's API URL and where it came from: --api, the discovery record, or the default."""
    if api:
        return api.rstrip("/"), "--api"
    record = read_discovery(settings.db_path)
    if record is not None and isinstance(record.get("api_url"), str):
        return str(record["api_url"]).rstrip("/"), f"the service running on {settings.db_path}"
    return DEFAULT_API_URL, "the default (no running service found beside the database)"


def streamlit_command(api_url: str, port: int, host: str = "127.0.0.1") -> list[str]:
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP_PATH),
        "--server.port",
        str(port),
        "--server.address",
        host,
        "--server.headless",
        "true",
        "--server.fileWatcherType",
        "none",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "viewer",
        "--client.showErrorDetails",
        "type",
        "--",
        "--api",
        api_url,
    ]


def dashboard_command(
    config: ConfigOption = None,
    db: DbOption = None,
    api: Annotated[
        str | None,
        typer.Option(
            "--api",
            help="The service's URL. Default: found beside --db (a running service says where "
            f"it listens), else {DEFAULT_API_URL}.",
        ),
    ] = None,
    port: PortOption = DEFAULT_DASHBOARD_PORT,
    host: HostOption = "127.0.0.1",
) -> None:
    """Run the live dashboard (Streamlit) against a running ShopPulse service."""
    settings = make_settings(config, db)
    url, origin = resolve_api_url(api, settings)
    if port_in_use(host, port):
        raise fail(f"port {port} is already in use; pass --port N")
    err.print(f"Dashboard on http://{host}:{port} reading the service at {url} (from {origin})")
    children = Children()
    code = 0
    with stop_signals():
        try:
            code = children.start("dashboard", streamlit_command(url, port, host), None).wait()
        except Stop:
            pass
        finally:
            with signals_ignored():
                children.stop_all(lambda message: None)
    if code not in (0, -signal.SIGTERM, -signal.SIGINT):
        raise typer.Exit(code=1)
