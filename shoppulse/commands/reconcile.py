"""`shoppulse reconcile`: fetch from each store's API what its webhooks missed, and fill it in.

While the service runs it does the work (DuckDB has one writer): the command starts the runs with
`POST /api/v1/reconciliation/runs` and follows them. With the service stopped it opens the live
file itself; the metrics then include the filled records from the service's next start.
See docs/reconciliation.md.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ingest.settings import Settings
from ingest.sources import ConfigError
from shoppulse.commands._errors import err, fail
from shoppulse.commands._options import ConfigOption, DbOption
from shoppulse.commands._settings import load_configured_sources, make_settings
from shoppulse.commands._target import ServiceClient, database_or_service
from shoppulse.commands.quarantine import parse_since

out = Console()

_SPAN = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
POLL_SECONDS = 0.25


def since_moment(text: str, now: datetime) -> datetime:
    """`--since`: a span back from now (`90m`, `24h`, `7d`) or an ISO 8601 time."""
    match = _SPAN.match(text)
    if match:
        return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        return parse_since(text)
    except ValueError:
        raise ValueError(
            f"--since {text!r} is neither a span (90m, 24h, 7d) nor an ISO 8601 time"
        ) from None


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),  # a pulse until the API tells the listing's size (WooCommerce does)
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
        console=err,
    )


def _counts(report: dict[str, Any]) -> str:
    total = f" of {report['total']}" if report.get("total") is not None else ""
    return (
        f"{report['fetched']}{total} fetched, {report['missing'] + report['newer']} to fill, "
        f"{report['errors']} errors"
    )


def _follow(reports: list[dict[str, Any]], read: Any) -> list[dict[str, Any]]:
    """Show each run's progress until every run has finished; `read(run)` is its report now."""
    from ingest.reconcile.report import RUNNING

    with _progress() as progress:
        tasks = {
            r["run_id"]: progress.add_task(
                f"reconciling {r['source']}", total=None, counts=_counts(r)
            )
            for r in reports
        }
        while True:
            reports = [read(r) for r in reports]
            for report in reports:
                progress.update(
                    tasks[report["run_id"]],
                    total=report.get("total"),
                    completed=report["fetched"],
                    counts=_counts(report),
                )
            if all(r["status"] != RUNNING for r in reports):
                return reports
            time.sleep(POLL_SECONDS)


def _in_service(service: ServiceClient, body: dict[str, Any]) -> list[dict[str, Any]]:
    started = service.call("POST", "/api/v1/reconciliation/runs", json=body)["runs"]
    return _follow(
        started, lambda r: service.call("GET", f"/api/v1/reconciliation/runs/{r['run_id']}")
    )


def _here(target: Any, settings: Settings, body: dict[str, Any]) -> list[dict[str, Any]]:
    from ingest.reconcile.service import NoCredentials, Reconciler
    from ingest.storage.writer import Writer

    try:
        sources = load_configured_sources(settings)
    except ConfigError as exc:
        raise fail(escape(str(exc))) from None
    if body["source"] is not None and body["source"] not in sources:
        raise fail(f"source '{body['source']}' is not in {settings.config}")
    writer = Writer(target)
    reconciler = Reconciler(target, writer, sources, settings, lambda: datetime.now(UTC))
    writer.start()
    try:
        targets = [body["source"]] if body["source"] else sorted(reconciler.states)
        if not targets:
            raise fail("no source has store API credentials (see docs/reconciliation.md)")
        try:
            runs = [
                reconciler.start_run(sid, since=body["since"], dry_run=body["dry_run"])
                for sid in targets
            ]
        except NoCredentials as exc:
            raise fail(escape(str(exc))) from None
        reports = _follow([r.as_dict() for r in runs], lambda r: _by_id(runs, r).as_dict())
        reconciler.wait()
        return reports
    finally:
        reconciler.stop()  # on Ctrl-C too: cuts the API waits short before the writer stops
        writer.stop()


def _by_id(runs: list[Any], report: dict[str, Any]) -> Any:
    return next(run for run in runs if run.run_id == report["run_id"])


def _print(reports: list[dict[str, Any]], *, here: bool) -> None:
    dry = any(r["dry_run"] for r in reports)
    table = Table(title="reconciliation" + (" (dry run: nothing stored)" if dry else ""))
    for column in ("source", "status", "fetched", "current", "missing", "newer", "older"):
        table.add_column(column, justify="left" if column in ("source", "status") else "right")
    table.add_column("errors", justify="right")
    for r in reports:
        table.add_row(
            r["source"],
            r["status"],
            *(str(r[k]) for k in ("fetched", "current", "missing", "newer", "older", "errors")),
        )
    out.print(table)
    out.print(
        "missing and newer records "
        + ("would be filled" if dry else "were filled")
        + "; older ones (a newer webhook arrived meanwhile) were left alone; errors are in "
        "quarantine (`shoppulse quarantine list --reason reconciliation`)",
        soft_wrap=True,
    )
    for r in reports:
        if r["message"]:
            out.print(f"[bold]{escape(r['source'])}[/]: {escape(r['message'])}", soft_wrap=True)
    if here and not dry and any(r["missing"] + r["newer"] for r in reports):
        out.print("the metrics include the filled records from the service's next start")


def reconcile(
    source: Annotated[
        str | None,
        typer.Option(
            "--source", help="Only this source (default: every source with store API credentials)."
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Records changed since this span ago (90m, 24h, 7d) or ISO time. Default: "
            "where the source's last run started, minus the overlap.",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Compare and report; store nothing.")
    ] = False,
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """Fetch orders (and Stripe sessions) from each store's API; fill what the webhooks missed."""
    settings = make_settings(config, db)
    try:
        moment = since_moment(since, datetime.now(UTC)) if since else None
    except ValueError as exc:
        raise fail(escape(str(exc))) from None
    body: dict[str, Any] = {"source": source, "since": moment, "dry_run": dry_run}
    with database_or_service(settings) as target:
        if isinstance(target, ServiceClient):
            wire = {**body, "since": moment.isoformat() if moment else None}
            reports = _in_service(target, wire)
            here = False
        else:
            reports = _here(target, settings, body)
            here = True
    _print(reports, here=here)
    if any(r["status"] != "ok" for r in reports):
        raise typer.Exit(code=1)
