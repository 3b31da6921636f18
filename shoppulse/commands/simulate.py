"""`shoppulse simulate`: send realistic Shopify traffic to a running ShopPulse.

A thin layer over `shoppulse.simulator`: it resolves sources and secrets, runs the sender with a
live progress line, prints a summary and exits 1 when any delivery failed (4xx, 5xx, connection
error; a 503 is retried after its Retry-After and counted, not failed).
"""

from __future__ import annotations

import asyncio
import re
import secrets as random_secrets
import signal
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ingest.sources import ConfigError, load_sources
from shoppulse.commands._errors import err, fail
from shoppulse.commands._settings import make_settings
from shoppulse.wording import counted

if TYPE_CHECKING:
    from shoppulse.simulator import SendReport, Simulator, StoreTruth

_SOURCE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def resolve_sources(sources: list[str], stores: int | None) -> tuple[str, ...]:
    """The source ids to send to: one per store.

    With one `--source` and `--stores N`, the stores are `<source>`, `<source>-2`, ...
    `<source>-N`. Several `--source` options name the stores directly (`--stores`, if given,
    must match their number).
    """
    from shoppulse.simulator import store_sources

    names = sources or ["demo"]
    if len(names) == 1:
        resolved = store_sources(names[0], stores or 1)
    elif stores is not None and stores != len(names):
        raise ValueError(f"--stores {stores} does not match the {len(names)} --source options")
    else:
        resolved = tuple(names)
    for name in resolved:
        if not _SOURCE_ID.match(name):
            raise ValueError(f"'{name}' is not a valid source id (lower-case letters, digits, _ -)")
    if len(set(resolved)) != len(resolved):
        raise ValueError("the same source is named twice")
    return resolved


def resolve_secrets(
    sources: tuple[str, ...], given: list[str], config: Path | None
) -> dict[str, str]:
    """One secret per source: `--secret` (one for all, or one per source), else the sources file."""
    if given:
        if len(given) == 1:
            return dict.fromkeys(sources, given[0])
        if len(given) != len(sources):
            raise ValueError(f"{len(given)} --secret options for {len(sources)} sources")
        return dict(zip(sources, given, strict=True))
    settings = make_settings(config)
    if settings.config is None:
        return {}
    configured = load_sources(settings.config)
    resolved: dict[str, str] = {}
    for source in sources:
        if source not in configured:
            raise ConfigError(f"source '{source}' is not in {settings.config}")
        values = configured[source].secret_values()
        if values:
            resolved[source] = values[0]
    return resolved


def _parse_start(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--start '{value}' is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise ValueError("--start needs a UTC offset, e.g. 2026-01-01T12:00:00+00:00")
    return parsed.astimezone(UTC)


def _progress_line(report: SendReport, planned: int | None) -> Text:
    of = f"/{planned}" if planned else ""
    line = Text()
    line.append(f"sent {report.sent}{of}", style="bold")
    line.append(f"  stored {report.stored}", style="green")
    line.append(f"  duplicate {report.duplicate}", style="cyan")
    line.append(f"  quarantined {report.quarantined}", style="yellow")
    line.append(f"  4xx {report.client_errors}", style="red" if report.client_errors else "")
    line.append(f"  5xx {report.server_errors}", style="red" if report.server_errors else "")
    line.append(f"  errors {report.errors}", style="red" if report.errors else "")
    line.append(f"  503 retried {report.retried_503}")
    line.append(f"  {report.throughput:.1f}/s", style="dim")
    return line


def _money(amounts: dict[str, Decimal]) -> str:
    return "\n".join(f"{amount} {code}" for code, amount in sorted(amounts.items())) or "0"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def _summary(report: SendReport, simulator: Simulator) -> list[Table]:
    answers = Table(title="Deliveries", show_header=True)
    answers.add_column("outcome")
    answers.add_column("count", justify="right")
    for label, value in (
        ("sent", report.sent),
        ("200 stored", report.stored),
        ("200 duplicate", report.duplicate),
        ("202 quarantined", report.quarantined),
        ("4xx", report.client_errors),
        ("5xx", report.server_errors),
        ("connection errors", report.errors),
        ("503 retried", report.retried_503),
        ("unexpected answers", report.unexpected),
    ):
        answers.add_row(label, str(value))
    answers.add_row("throughput", f"{report.throughput:.1f}/s in {report.elapsed:.1f} s")
    answers.add_row(
        "latency p50 / p95 / p99",
        " / ".join(_ms(report.latency(q)) for q in (0.5, 0.95, 0.99)),
    )
    counts = simulator.counts
    answers.add_row(
        "generated",
        f"{counts.fresh} fresh, {counts.retry} retries, {counts.stale} stale, "
        f"{counts.unusable} unusable",
    )
    stores = list(simulator.truth.items())
    if len(stores) > 1:
        stores.append(("all stores", simulator.total()))
    truth = Table(title="What was simulated (truth)", show_header=True)
    truth.add_column("figure")
    for source, _ in stores:
        truth.add_column(source, justify="right")
    figures: list[tuple[str, Callable[[StoreTruth], object]]] = [
        ("carts created", lambda t: t.carts_created),
        ("carts converted", lambda t: t.carts_converted),
        ("  of which recovered late", lambda t: t.carts_recovered),
        ("checkouts started", lambda t: t.checkouts_started),
        ("checkouts completed", lambda t: t.checkouts_completed),
        ("orders created", lambda t: t.orders_created),
        ("orders counted", lambda t: t.orders),
        ("test orders", lambda t: t.test_orders),
        ("cancelled orders", lambda t: t.cancelled_orders),
        ("refunds (counted orders)", lambda t: t.refunds),
        ("gross sales", lambda t: _money(t.gross_sales)),
        ("discounts", lambda t: _money(t.discounts)),
        ("returns", lambda t: _money(t.returns)),
    ]
    for label, figure in figures:
        truth.add_row(label, *(str(figure(t)) for _, t in stores))
    return [answers, truth]


async def _run(
    simulator: Simulator,
    *,
    secrets: dict[str, str],
    url: str,
    count: int,
    duration: float,
    concurrency: int,
    live: Live,
) -> SendReport:
    from shoppulse.simulator import send, take

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def interrupted() -> None:
        err.print("stopping: finishing the deliveries in flight (Ctrl-C again to abort)")
        stop.set()
        loop.remove_signal_handler(signal.SIGINT)

    try:
        loop.add_signal_handler(signal.SIGINT, interrupted)
    except (NotImplementedError, RuntimeError):  # not the main thread, or no signal support
        pass
    planned = count or (int(duration * simulator.config.rate) if duration else None)
    try:
        return await send(
            take(simulator, count=count, duration=duration),
            secrets=secrets,
            url=url,
            concurrency=concurrency,
            stop=stop,
            progress=lambda report: live.update(_progress_line(report, planned)),
        )
    finally:
        try:
            loop.remove_signal_handler(signal.SIGINT)
        except (NotImplementedError, RuntimeError):
            pass


def simulate(
    url: Annotated[
        str,
        typer.Option(
            help="Base URL of the ShopPulse service; several, comma-separated, share the "
            "deliveries (intake replicas)."
        ),
    ] = ("http://127.0.0.1:8000"),
    source: Annotated[
        list[str] | None,
        typer.Option(
            "--source",
            help="Source id to send to (default: demo). Repeat it to name several stores.",
        ),
    ] = None,
    secret: Annotated[
        list[str] | None,
        typer.Option(
            "--secret",
            help="The source's webhook secret: once for every store, or once per --source. "
            "Default: the secret in the sources file (--config).",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", help="Sources file to read secrets from. Default: $SHOPPULSE_CONFIG."
        ),
    ] = None,
    rate: Annotated[float, typer.Option(min=0.001, help="Deliveries per second.")] = 20.0,
    duration: Annotated[
        float, typer.Option(min=0, help="Seconds to run; 0 runs until Ctrl-C (or --count).")
    ] = 0.0,
    count: Annotated[
        int, typer.Option(min=0, help="Stop after this many deliveries (0: no limit).")
    ] = 0,
    stores: Annotated[
        int | None,
        typer.Option(min=1, help="Number of stores: <source>, <source>-2, ... <source>-N."),
    ] = None,
    currencies: Annotated[
        str, typer.Option(help="Comma-separated shop currencies, e.g. USD,EUR.")
    ] = "USD",
    seed: Annotated[
        int | None, typer.Option(help="Random seed: the same seed sends the same deliveries.")
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(help="Time of the first delivery (ISO 8601 with offset). Default: now."),
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight at most.")] = 16,
    faults: Annotated[
        bool,
        typer.Option(
            "--faults/--no-faults",
            help="Include duplicates, stale versions, late recoveries and unusable bodies.",
        ),
    ] = True,
) -> None:
    """Send realistic Shopify webhooks (carts, checkouts, orders, refunds) to ShopPulse."""
    from shoppulse.simulator import Mix, SimulationConfig, Simulator

    try:
        source_ids = resolve_sources(source or [], stores)
        secrets = resolve_secrets(source_ids, secret or [], config)
        codes = tuple(code.strip().upper() for code in currencies.split(",") if code.strip())
        chosen_seed = seed if seed is not None else random_secrets.randbelow(2**31)
        mix = Mix() if faults else Mix().without_faults()
        simulator = Simulator(
            SimulationConfig(
                seed=chosen_seed,
                start=_parse_start(start),
                rate=rate,
                sources=source_ids,
                currencies=codes,
                mix=mix,
            )
        )
    except (ValueError, ConfigError) as exc:
        raise fail(str(exc)) from None
    unsigned = [name for name in source_ids if name not in secrets]
    if unsigned:
        err.print(
            f"[bold yellow]warning:[/] no secret for {', '.join(unsigned)}: their deliveries "
            "carry no valid signature, so only a service started with --insecure-demo accepts "
            "them. Pass --secret or --config."
        )
    bound = (
        counted(count, "delivery", "deliveries")
        if count
        else (f"{duration:g} s" if duration else "until Ctrl-C")
    )
    err.print(
        f"Simulating {counted(len(source_ids), 'store')} ({', '.join(source_ids)}) -> {url} at "
        f"{rate:g}/s, {bound}, seed {chosen_seed}"
    )
    out = Console()
    with Live(Text("starting..."), console=err, refresh_per_second=5, transient=False) as live:
        try:
            report = asyncio.run(
                _run(
                    simulator,
                    secrets=secrets,
                    url=url,
                    count=count,
                    duration=duration,
                    concurrency=concurrency,
                    live=live,
                )
            )
        except KeyboardInterrupt:
            raise typer.Exit(code=130) from None
    for table in _summary(report, simulator):
        out.print(table)
    for failure in report.failures:
        err.print(f"[red]failed:[/] {failure}")
    if report.unexpected:
        err.print(
            f"[yellow]note:[/] {report.unexpected} answers differed from what the simulator "
            "expected (stored, duplicate or quarantined), for example because an earlier run "
            "with the same seed stored these deliveries already."
        )
    if report.failed:
        raise typer.Exit(code=1)
