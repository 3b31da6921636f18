"""`shoppulse quarantine list` and `shoppulse replay`: look at quarantined deliveries, replay them.

With the service stopped they open the live file directly. While it runs (the file is locked),
they ask it instead, at the address in its discovery record beside the database:
`GET /api/v1/ingest/quarantine` and `POST /api/v1/ingest/replay`. See docs/replay.md.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from ingest.quarantine_advice import next_step
from ingest.settings import Settings
from ingest.sources import ConfigError
from shoppulse.commands._errors import err, fail
from shoppulse.commands._options import ConfigOption, DbOption
from shoppulse.commands._settings import load_configured_sources, make_settings
from shoppulse.commands._target import ServiceClient, database_or_service
from shoppulse.wording import counted

if TYPE_CHECKING:  # the commands import these when they run: `shoppulse --help` stays light
    import duckdb

    from ingest.replay import QuarantineFilter, ReplayReport, ReplayRequest

out = Console()

quarantine_app = typer.Typer(help="Quarantined deliveries and why.", no_args_is_help=True)

SourceFilter = Annotated[str | None, typer.Option("--source", help="Only this source.")]
ReasonFilter = Annotated[
    str | None, typer.Option("--reason", help="Only reasons containing this text (any case).")
]

# ----------------------------------------------------------------------------- quarantine list


@quarantine_app.command("list")
def list_command(
    source: SourceFilter = None,
    reason: ReasonFilter = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Most deliveries shown.")] = 50,
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """Show quarantined deliveries, newest first, with the reason each was quarantined."""
    settings = make_settings(config, db)
    with database_or_service(settings) as target:
        if isinstance(target, ServiceClient):
            params: dict[str, Any] = {"limit": limit}
            params.update({k: v for k, v in (("source", source), ("reason", reason)) if v})
            rows = target.call("GET", "/api/v1/ingest/quarantine", params=params)["deliveries"]
        else:
            from ingest.api import recent_quarantine

            rows = recent_quarantine(target, limit, source, reason)
    if not rows:
        out.print("no quarantined deliveries" + (" match" if source or reason else ""))
        return
    shown = counted(len(rows), "quarantined delivery", "quarantined deliveries")
    table = Table(title=f"{shown} (newest first)", expand=True)
    for column, ratio in (
        ("source", 1),
        ("delivery id", 2),
        ("topic", 2),
        ("received at", 2),
        ("reason", 5),
    ):
        table.add_column(column, overflow="fold", ratio=ratio)
    for row in rows:
        table.add_row(
            *(Text(str(row[k] or "")) for k in ("source", "delivery_id", "topic", "received_at")),
            Text(str(row["reason"] or "")),
        )
    out.print(table)
    _print_next_steps(rows)


def _print_next_steps(rows: list[dict[str, Any]]) -> None:
    """What to do about the deliveries listed, once per kind of advice."""
    steps = Counter(str(row.get("next") or next_step(row["reason"])) for row in rows)
    out.print("what to do:")
    for step, count in steps.most_common():
        out.print(f"  {counted(count, 'delivery', 'deliveries')}: {escape(step)}", soft_wrap=True)


# ----------------------------------------------------------------------------- replay


def parse_since(text: str) -> datetime:
    """An ISO 8601 time for `--since`; without an offset it is UTC."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"--since {text!r} is not an ISO 8601 time (e.g. 2026-01-31T12:00Z)"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
    )


def _replay_live(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    where: QuarantineFilter,
    dry_run: bool,
) -> ReplayReport:
    from ingest.replay import CHUNK, ReplayReport, count_quarantined, providers_for, replay_chunk
    from ingest.storage.writer import Writer

    try:
        sources = load_configured_sources(settings)
    except ConfigError as exc:
        raise fail(escape(f"{exc} (replay normalizes with each source's provider)")) from None
    if where.source and where.source not in sources:
        raise fail(f"source '{where.source}' is not in {settings.config}")
    providers = providers_for(sources, settings)
    writer = Writer(con)  # not started: it hands out the event seqs
    report = ReplayReport(dry_run=dry_run)
    after = 0
    with _progress() as progress:
        task = progress.add_task(
            "dry run" if dry_run else "replaying", total=count_quarantined(con, where)
        )
        while True:
            chunk = replay_chunk(
                con,
                providers,
                settings,
                where,
                now=datetime.now(UTC),
                append_events=writer.append_events,
                after_seq=after,
                limit=CHUNK,
                dry_run=dry_run,
            )
            report.add(chunk)
            progress.advance(task, chunk.examined)
            if chunk.next_after is None:
                return report
            after = chunk.next_after


def _replay_remote(service: ServiceClient, request: ReplayRequest) -> ReplayReport:
    from ingest.replay import ReplayReport

    report = ReplayReport(dry_run=request.dry_run)
    with _progress() as progress:
        doing = "dry run" if request.dry_run else "replaying"
        task = progress.add_task(f"{doing} (in the service)", total=None)
        while True:
            body = service.call(
                "POST",
                "/api/v1/ingest/replay",
                content=request.model_dump_json(),
                headers={"Content-Type": "application/json"},
            )
            chunk = ReplayReport(
                dry_run=bool(body["dry_run"]),
                total=body.get("total"),
                examined=int(body["examined"]),
                moved=int(body["moved"]),
                stayed=int(body["stayed"]),
                skipped=int(body["skipped"]),
                events=int(body["events"]),
                reasons_changed=int(body["reasons_changed"]),
                next_after=body["next_after"],
                still_quarantined=list(body["still_quarantined"]),
            )
            if report.total is None and chunk.total is not None:
                progress.update(task, total=chunk.total)
            report.add(chunk)
            progress.advance(task, chunk.examined)
            if chunk.next_after is None:
                return report
            request = request.model_copy(update={"after": chunk.next_after})


def _replay_summary(report: ReplayReport) -> str:
    """One line: how many were replayed (or would be, in a dry run) and where they went."""
    deliveries = counted(report.examined, "quarantined delivery", "quarantined deliveries")
    events = counted(report.events, "event")
    unconfigured = (
        f"; {report.skipped} of unconfigured sources left as they were" if report.skipped else ""
    )
    if report.dry_run:
        return (
            f"dry run, nothing changed: would replay {deliveries}: would move {report.moved} "
            f"out of quarantine ({events}); {report.stayed} would stay in quarantine"
            f"{unconfigured}"
        )
    return (
        f"replayed {deliveries}: moved {report.moved} out of quarantine ({events}); "
        f"{report.stayed} stay in quarantine{unconfigured}"
    )


def _print_report(report: ReplayReport, *, live: bool) -> None:
    out.print(_replay_summary(report), soft_wrap=True)
    if report.moved and not report.dry_run:
        out.print(
            "the metrics include the moved deliveries as soon as the service folds them"
            + (" (at its next start)" if live else " (now)"),
            soft_wrap=True,
        )
    if report.still_quarantined:
        table = Table(title="would stay in quarantine" if report.dry_run else "still quarantined")
        for column in ("source", "delivery id", "topic", "reason"):
            table.add_column(column, overflow="fold")
        for row in report.still_quarantined:
            changed = row["reason"] != row["previous_reason"]
            table.add_row(
                Text(str(row["source"])),
                Text(str(row["delivery_id"])),
                Text(str(row["topic"])),
                Text(("(new) " if changed else "") + (row["reason"] or "")),
            )
        out.print(table)
        if report.stayed > len(report.still_quarantined):
            out.print(f"... and {report.stayed - len(report.still_quarantined)} more")


def replay(
    source: SourceFilter = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only deliveries received at or after this ISO time (UTC)."),
    ] = None,
    reason: ReasonFilter = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would move; change nothing.")
    ] = False,
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """Normalize quarantined deliveries again; move those that pass out of quarantine.

    Signatures are not checked again (they were checked on arrival). Replaying twice moves
    nothing the second time.
    """
    from ingest.replay import CHUNK, ReplayRequest

    settings = make_settings(config, db)
    try:
        since_time = parse_since(since) if since else None
    except ValueError as exc:
        raise fail(escape(str(exc))) from None
    request = ReplayRequest(source=source, since=since_time, reason=reason, dry_run=dry_run)
    with database_or_service(settings) as target:
        if isinstance(target, ServiceClient):
            report = _replay_remote(target, request.model_copy(update={"limit": CHUNK}))
            live = False
        else:
            report = _replay_live(target, settings, request.quarantine_filter(), dry_run)
            live = True
    _print_report(report, live=live)
