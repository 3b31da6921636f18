"""`shoppulse sources ...`: list the configured stores, add one, rotate and retire secrets.

A thin layer over ingest/source_admin.py. Secrets are never printed, except one generated here
(shown once). The service reads the sources file at start: restart it to apply a change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ingest.source_admin import (
    add_source,
    ingest_path,
    list_sources,
    retire_secrets,
    rotate_secret,
)
from ingest.sources import ConfigError
from shoppulse.commands._errors import fail
from shoppulse.commands._options import ConfigOption
from shoppulse.commands._settings import make_settings
from shoppulse.wording import counted

out = Console()

sources_app = typer.Typer(
    help="List the store sources, add one, rotate and retire their secrets.",
    no_args_is_help=True,
)

IdOption = Annotated[str, typer.Option("--id", help="The source id (part of the ingest URL).")]
SecretOption = Annotated[
    str | None,
    typer.Option(
        "--secret",
        help="The signing secret. Omitted (and no --generate-secret): asked for without echo.",
    ),
]
GenerateOption = Annotated[
    bool,
    typer.Option(
        "--generate-secret",
        help="Make a random secret and print it once (woocommerce and standard sources, whose "
        "secret you choose).",
    ),
]


def _config(config: Path | None) -> Path:
    settings = make_settings(config)
    if settings.config is None:
        raise fail("no sources file: pass --config FILE or set SHOPPULSE_CONFIG")
    return settings.config


def _secret(secret: str | None, generate: bool) -> str | None:
    if secret is not None and generate:
        raise fail("give either --secret or --generate-secret, not both")
    if secret is None and not generate:
        return str(typer.prompt("Secret", hide_input=True))
    return secret


def _applied() -> None:
    out.print("The service reads the sources file at start: if it runs, restart it to apply this.")


@sources_app.command("list")
def list_command(config: ConfigOption = None) -> None:
    """Show the configured sources: id, provider, number of secrets (never the secrets)."""
    path = _config(config)
    try:
        summaries = list_sources(path)
    except ConfigError as exc:
        raise fail(escape(str(exc))) from None
    if not summaries:
        out.print(f"no sources in {escape(str(path))}; add one with `shoppulse sources add`")
        return
    table = Table(title=f"sources in {escape(str(path))}")
    for column in ("id", "provider", "secrets", "store API", "time zone", "ingest URL path"):
        table.add_column(column, overflow="fold")  # wrapped at 80 columns, never cut
    for s in summaries:
        table.add_row(
            s.id,
            s.provider,
            str(s.secrets),
            "yes" if s.api_credentials else "",
            s.timezone or "display",
            ingest_path(s.id),
        )
    out.print(table)


@sources_app.command("add")
def add_command(
    source_id: IdOption,
    provider: Annotated[
        str,
        typer.Option(help="shopify, woocommerce, bigcommerce, stripe or standard."),
    ],
    secret: SecretOption = None,
    generate_secret: GenerateOption = False,
    timezone: Annotated[
        str | None,
        typer.Option(
            "--timezone",
            help="The store's IANA time zone (e.g. Europe/Berlin); its days follow it. "
            "Default: the display_timezone setting.",
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Add a source to the sources file (created if missing) and print its ingest URL path."""
    path = _config(config)
    try:
        generated = add_source(
            path,
            source_id,
            provider,
            _secret(secret, generate_secret),
            generate=generate_secret,
            timezone=timezone,
        )
    except ConfigError as exc:
        raise fail(escape(str(exc))) from None
    out.print(f"added source '{source_id}' ({provider}) to {escape(str(path))}", soft_wrap=True)
    out.print(f"ingest URL: https://<host>{ingest_path(source_id)}", soft_wrap=True)
    if generated is not None:
        out.print("secret (shown only now; configure it in the sender):", soft_wrap=True)
        out.print(generated, soft_wrap=True, markup=False, highlight=False)
    _applied()


@sources_app.command("rotate-secret")
def rotate_command(
    source_id: IdOption,
    secret: SecretOption = None,
    generate_secret: GenerateOption = False,
    config: ConfigOption = None,
) -> None:
    """Add a new secret to a source; the old ones stay valid until `retire-secret`."""
    path = _config(config)
    try:
        generated = rotate_secret(
            path, source_id, _secret(secret, generate_secret), generate=generate_secret
        )
    except ConfigError as exc:
        raise fail(escape(str(exc))) from None
    out.print(
        f"added a new secret to '{source_id}'; the old ones stay valid. Once the platform signs "
        "with the new one, run `shoppulse sources retire-secret --keep-latest`.",
        soft_wrap=True,
    )
    if generated is not None:
        out.print("new secret (shown only now; configure it in the sender):", soft_wrap=True)
        out.print(generated, soft_wrap=True, markup=False, highlight=False)
    _applied()


@sources_app.command("retire-secret")
def retire_command(
    source_id: IdOption,
    keep_latest: Annotated[
        bool, typer.Option("--keep-latest", help="Remove every secret but the newest.")
    ] = False,
    secret: Annotated[
        str | None, typer.Option("--secret", help="Remove exactly this secret.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Remove old secrets of a source (never its last one)."""
    path = _config(config)
    try:
        removed = retire_secrets(path, source_id, keep_latest=keep_latest, secret=secret)
    except ConfigError as exc:
        raise fail(escape(str(exc))) from None
    if not removed:
        out.print(f"'{source_id}' has only one secret: nothing to retire")
        return
    out.print(f"removed {counted(removed, 'secret')} of '{source_id}'")
    _applied()
