"""`shoppulse up`: the whole pipeline at once.

It starts the service, the dashboard and, with `--demo`, a simulated store sending signed Shopify
webhooks; it prints where everything is and stops it all on Ctrl-C. With `--scale-out` the service
is split around a local log: nats-server, a store and two intake replicas.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from ingest.settings import Settings
from ingest.sources import ConfigError, Source, check_secrets, load_sources
from shoppulse.commands._errors import err, fail
from shoppulse.commands._options import ConfigOption, DbOption
from shoppulse.commands._processes import (
    Children,
    Stop,
    port_in_use,
    signals_ignored,
    stop_signals,
    wait_until_up,
)
from shoppulse.commands._scale_out_up import NATS_PORT, busy_port, intake_urls, start_scale_out
from shoppulse.commands._settings import make_settings
from shoppulse.commands.dashboard import DEFAULT_DASHBOARD_PORT, streamlit_command

DEMO_SOURCE = "demo"
#: This interpreter running the `shoppulse` command (with every registered command).
CLI = (sys.executable, "-c", "from shoppulse.cli import main; main()")


def write_demo_sources(path: Path) -> Path:
    """A sources file with one Shopify source `demo` and a fresh random secret (kept private)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_hex(24)
    text = (
        "# Written by `shoppulse up` for the local demo store. Delete it for a new secret.\n"
        "[[sources]]\n"
        f'id = "{DEMO_SOURCE}"\n'
        'provider = "shopify"\n'
        f'secrets = ["{secret}"]\n'
    )
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


def demo_source(sources: dict[str, Source]) -> Source:
    """The source the demo store sends to: `demo`, else the first Shopify source with a secret."""
    candidates = [sources[DEMO_SOURCE]] if DEMO_SOURCE in sources else []
    candidates += [s for s in sources.values() if s.provider == "shopify"]
    for source in candidates:
        if source.provider == "shopify" and source.secret_values():
            return source
    raise ConfigError(
        "--demo sends signed Shopify webhooks: the sources file needs a shopify source with a "
        "secret (or leave out --config to use a generated demo source)"
    )


@dataclass(frozen=True)
class Plan:
    """What `up` runs, and where."""

    settings: Settings
    config: Path
    sources: dict[str, Source]
    demo: Source | None  # the source the demo store sends to (with --demo)
    generated: bool  # the config is the generated demo sources file
    dashboard_port: int
    rate: float
    scale_out: bool = False  # a local log, a store and intake replicas instead of `serve`
    log_port: int = NATS_PORT

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.port}"

    @property
    def ingest_urls(self) -> list[str]:
        """Where webhooks go: the service, or the intake replicas when scaled out."""
        return intake_urls(self.settings.port) if self.scale_out else [self.api_url]

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def logs(self) -> Path:
        return self.settings.db_path.parent / "logs"


def command_hint(path_env: str | None = None) -> str:
    """How to run `shoppulse` in another shell: by name when it is on PATH, else by the path of
    this installation's script (`make` installs it into .venv, which is not on PATH)."""
    script = Path(sys.executable).parent / "shoppulse"
    found = shutil.which(
        "shoppulse", path=path_env if path_env is not None else os.environ.get("PATH")
    )
    if found is not None and Path(found).resolve() == script.resolve():
        return "shoppulse --help"
    try:
        shown = script.relative_to(Path.cwd())
    except ValueError:
        shown = script
    return f"{shown} --help  (or `source {shown.parent / 'activate'}` first)"


def _summary(plan: Plan) -> Panel:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("Dashboard", f"[bold cyan]{plan.dashboard_url}[/]")
    for source in plan.sources.values():
        signed = "Shopify, signed" if source.provider == "shopify" else source.provider
        for url in plan.ingest_urls:
            table.add_row("Ingest URL", f"{url}/webhooks/{source.id}  ({signed})")
    shown = plan.demo or (plan.sources.get(DEMO_SOURCE) if plan.generated else None)
    if shown is not None:
        table.add_row("Demo secret", shown.secret_values()[0])
    table.add_row("Read API", f"{plan.api_url}/docs" + ("  (the store)" if plan.scale_out else ""))
    if plan.scale_out:
        table.add_row("Log", f"nats://127.0.0.1:{plan.log_port} (JetStream, stream SHOPPULSE)")
        table.add_row("Log token", f"{plan.settings.db_path.parent / 'nats' / 'token'}")
    table.add_row("Sources file", str(plan.config))
    table.add_row("Database", str(plan.settings.db_path))
    table.add_row("Logs", f"{plan.logs}/")
    table.add_row("Commands", command_hint())
    note = (
        f"A demo store sends about {plan.rate:g} signed deliveries a second to '{plan.demo.id}'."
        if plan.demo is not None
        else "No demo traffic (start with --demo for a simulated store)."
    )
    table.add_row("", "")
    table.add_row("", f"{note} Press Ctrl-C to stop everything.")
    return Panel(table, title="ShopPulse is running", border_style="green", expand=False)


def up(
    config: ConfigOption = None,
    db: DbOption = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="Also run a simulated store sending signed webhooks.")
    ] = False,
    port: Annotated[
        int | None, typer.Option("--port", min=1, max=65535, help="Service port (default 8000).")
    ] = None,
    dashboard_port: Annotated[
        int, typer.Option("--dashboard-port", min=1, max=65535, help="Dashboard port.")
    ] = DEFAULT_DASHBOARD_PORT,
    rate: Annotated[
        float, typer.Option(min=0.1, help="Demo deliveries per second (with --demo).")
    ] = 10.0,
    scale_out: Annotated[
        bool,
        typer.Option(
            "--scale-out",
            help="Run scaled out (docs/scale-out.md): a local nats-server, one store on the "
            "service port and two intake replicas on the next two ports.",
        ),
    ] = False,
    log_port: Annotated[
        int,
        typer.Option(
            "--log-port", min=1, max=65535, help="Port of the local nats-server (--scale-out)."
        ),
    ] = NATS_PORT,
) -> None:
    """Start the service, the dashboard and (with --demo) a demo store; Ctrl-C stops all."""
    settings = make_settings(config, db, host="127.0.0.1", port=port)
    generated = settings.config is None
    try:
        if settings.config is None:
            path = settings.db_path.parent / "demo-sources.toml"
            if not path.exists():
                write_demo_sources(path)
            settings = make_settings(path, settings.db_path, host="127.0.0.1", port=port)
        config_path: Path = settings.config or Path()
        sources = load_sources(config_path)
        check_secrets(sources, insecure_demo=False)
        chosen = demo_source(sources) if demo else None
    except ConfigError as exc:
        raise fail(str(exc)) from None
    plan = Plan(
        settings, config_path, sources, chosen, generated, dashboard_port, rate, scale_out, log_port
    )
    for name, number, option in (
        ("service", settings.port, "--port"),
        ("dashboard", dashboard_port, "--dashboard-port"),
    ):
        if port_in_use("127.0.0.1", number):
            raise fail(f"port {number} (the {name}) is already in use; pass {option} N")
    busy = busy_port(settings.port, log_port) if scale_out else None
    if busy is not None:
        raise fail(f"{busy}; pass --log-port N, or --port N to move the store and the replicas")
    children = Children()
    code = 0
    with stop_signals():
        try:
            _start_all(children, plan)
            Console().print(_summary(plan))
            gone = children.wait_any()
            err.print(
                f"[bold red]the {gone.name} stopped (exit code {gone.process.returncode})[/]; "
                f"stopping everything. Its log ({gone.log_path}) ends with:\n{gone.log_tail()}"
            )
            code = 1
        except Stop:
            err.print("stopping ...")
        except RuntimeError as exc:
            err.print(f"[bold red]error:[/] {exc}")
            code = 1
        finally:
            with signals_ignored():
                children.stop_all(lambda message: err.print(message))
    if code:
        raise typer.Exit(code=code)
    err.print("stopped.")


def _start_all(children: Children, plan: Plan) -> None:
    """The service, then the dashboard, then the demo store: each one once the last is up."""
    settings = plan.settings
    if plan.scale_out:
        start_scale_out(
            children,
            CLI,
            config=plan.config,
            db_path=settings.db_path,
            service_port=settings.port,
            log_port=plan.log_port,
            logs=plan.logs,
            say=err.print,
        )
    else:
        err.print(f"starting the service on {plan.api_url} ...")
        service = children.start(
            "service",
            [
                *CLI, "serve",
                "--config", str(plan.config), "--db", str(settings.db_path),
                "--host", "127.0.0.1", "--port", str(settings.port), "--log-level", "warning",
            ],
            plan.logs / "service.log",
        )  # fmt: skip
        wait_until_up(f"{plan.api_url}/readyz", service)
    err.print(f"starting the dashboard on {plan.dashboard_url} ...")
    board = children.start(
        "dashboard",
        streamlit_command(plan.api_url, plan.dashboard_port),
        plan.logs / "dashboard.log",
    )
    wait_until_up(f"{plan.dashboard_url}/_stcore/health", board)
    if plan.demo is not None:
        children.start(
            "demo store",
            [
                *CLI, "simulate",
                "--url", ",".join(plan.ingest_urls), "--source", plan.demo.id,
                "--config", str(plan.config),
                "--rate", f"{plan.rate:g}", "--duration", "0",
            ],
            plan.logs / "simulator.log",
            stop_signal=signal.SIGINT,
        )  # fmt: skip
