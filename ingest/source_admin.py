"""Editing the sources file: list its sources, add one, rotate and retire secrets.

The file is edited in place with tomlkit, so the other sources, comments and formatting are
kept. Every change is checked before the file is replaced: the new text must load with
`load_sources` (the service's own check). The new text is written beside the file, flushed and
renamed over it, keeping the file's permissions (a new file gets 0600: it holds secrets).

The running service reads the file when it starts: a change applies after a restart.

Secrets are never returned or printed, except a secret generated here (returned once, for the
caller to show). Rotation is two steps so that no delivery is rejected in between:
`rotate_secret` adds the new secret next to the old ones (either verifies); once the platform
signs with the new one, `retire_secrets` removes the old ones.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
import tomlkit.exceptions
from tomlkit.items import AoT, Array, Table

from ingest.providers import PROVIDERS
from ingest.providers import _standard_webhooks as swh
from ingest.sources import ConfigError, load_sources, secret_problem
from ingest.timezones import checked_timezone

SOURCE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")

#: Providers whose secret the store owner chooses (the others sign with a key the platform
#: shows): `--generate-secret` makes one of the right form for these.
GENERATED = {
    "woocommerce": "any string, typed into each webhook's Secret field",
    "standard": "whsec_ + base64 of 32 random bytes, given to the sending store",
}


@dataclass(frozen=True, slots=True)
class SourceSummary:
    """What `sources list` shows: never a secret."""

    id: str
    provider: str
    secrets: int
    api_credentials: bool
    timezone: str | None = None


def ingest_path(source_id: str) -> str:
    return f"/webhooks/{source_id}"


def generate_secret(provider: str) -> str:
    """A fresh random secret for `provider`, when the store owner may choose it."""
    if provider == "standard":
        return swh.SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")
    if provider == "woocommerce":
        return secrets.token_urlsafe(32)
    raise ConfigError(
        f"{provider} signs deliveries with a secret it gives you (see docs/connect-your-store.md); "
        "pass that one with --secret. Secrets can be generated for: "
        f"{', '.join(sorted(GENERATED))}"
    )


def check_secret(provider: str, secret: str) -> None:
    """Refuse a secret that can never verify a delivery of `provider`."""
    problem = secret_problem(provider, secret)
    if problem is not None:
        raise ConfigError(problem)


def _check_id(source_id: str) -> None:
    if not SOURCE_ID.fullmatch(source_id):
        raise ConfigError(
            f"invalid source id {source_id!r}: use 1 to 64 lower-case letters, digits, '-' and "
            "'_', starting with a letter or digit (it is part of the ingest URL)"
        )


def _check_provider(provider: str) -> None:
    if provider not in PROVIDERS:
        raise ConfigError(f"unknown provider {provider!r} (known: {', '.join(sorted(PROVIDERS))})")


# ----------------------------------------------------------------------------- the file


def _read(path: Path, *, create: bool = False) -> tomlkit.TOMLDocument:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if create:
            return tomlkit.document()
        raise ConfigError(
            f"config file {path} does not exist; `shoppulse sources add` creates it"
        ) from None
    try:
        return tomlkit.parse(text)
    except tomlkit.exceptions.TOMLKitError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def _tables(doc: tomlkit.TOMLDocument, path: Path) -> list[Any]:
    tables = doc.get("sources")
    if tables is None:
        return []
    if not isinstance(tables, AoT | Array):
        raise ConfigError(f"config file {path}: 'sources' must be a list of [[sources]] tables")
    return list(tables)


def _find(doc: tomlkit.TOMLDocument, path: Path, source_id: str) -> Any:
    for table in _tables(doc, path):
        if table.get("id") == source_id:
            return table
    known = ", ".join(str(t.get("id")) for t in _tables(doc, path)) or "none"
    raise ConfigError(f"no source {source_id!r} in {path} (sources: {known})")


def _secret_list(table: Any) -> list[str]:
    listed = table.get("secrets")
    return [str(s) for s in listed] if listed is not None else []


def _write(path: Path, doc: tomlkit.TOMLDocument) -> None:
    """Check the new text with `load_sources`, then replace the file atomically."""
    text = tomlkit.dumps(doc)
    mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o600
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        try:
            load_sources(temporary)
        except ConfigError as exc:
            raise ConfigError(str(exc).replace(str(temporary), str(path))) from None
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


# ----------------------------------------------------------------------------- operations


def list_sources(path: Path) -> list[SourceSummary]:
    return [
        SourceSummary(s.id, s.provider, len(s.secrets), s.has_api_credentials, s.timezone)
        for s in load_sources(path).values()
    ]


def add_source(
    path: Path,
    source_id: str,
    provider: str,
    secret: str | None,
    *,
    generate: bool = False,
    timezone: str | None = None,
) -> str | None:
    """Add a source (creating the file if needed); return the secret when it was generated.

    `timezone`: the store's IANA time zone, which its days follow (unset: the display zone).
    """
    _check_id(source_id)
    _check_provider(provider)
    if timezone is not None:
        try:
            checked_timezone(timezone)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if (secret is None) == (not generate):
        raise ConfigError("give exactly one of a secret or --generate-secret")
    doc = _read(path, create=True)
    if any(t.get("id") == source_id for t in _tables(doc, path)):
        raise ConfigError(
            f"source {source_id!r} already exists in {path}; to change its secret use "
            "`shoppulse sources rotate-secret`"
        )
    generated = generate_secret(provider) if generate else None
    value = generated or secret or ""
    check_secret(provider, value)
    table = tomlkit.table()
    if _tables(doc, path):
        table.trivia.indent = "\n"  # a blank line after the previous source
    table.add("id", source_id)
    table.add("provider", provider)
    table.add("secrets", [value])
    if timezone is not None:
        table.add("timezone", timezone)
    if "sources" not in doc:
        doc.add("sources", tomlkit.aot())
    sources = doc["sources"]
    if not isinstance(sources, AoT | Array):
        raise ConfigError(f"config file {path}: 'sources' must be a list of [[sources]] tables")
    sources.append(table if isinstance(sources, AoT) else table.value)
    _write(path, doc)
    return generated


def rotate_secret(
    path: Path, source_id: str, secret: str | None, *, generate: bool = False
) -> str | None:
    """Add a new secret to a source, keeping the old ones valid; return it when generated."""
    if (secret is None) == (not generate):
        raise ConfigError("give exactly one of a secret or --generate-secret")
    doc = _read(path)
    table = _find(doc, path, source_id)
    provider = str(table.get("provider"))
    generated = generate_secret(provider) if generate else None
    value = generated or secret or ""
    check_secret(provider, value)
    current = _secret_list(table)
    if value in current:
        raise ConfigError(f"source {source_id!r} already has this secret")
    _set_secrets(table, [*current, value])
    _write(path, doc)
    return generated


def retire_secrets(
    path: Path, source_id: str, *, keep_latest: bool = False, secret: str | None = None
) -> int:
    """Remove old secrets: all but the newest (`keep_latest`) or exactly `secret`.

    Returns how many were removed. A source never loses its last secret.
    """
    if keep_latest == (secret is not None):
        raise ConfigError("give exactly one of --keep-latest or --secret")
    doc = _read(path)
    table = _find(doc, path, source_id)
    current = _secret_list(table)
    if keep_latest:
        kept = current[-1:]
    else:
        if secret not in current:
            raise ConfigError(f"source {source_id!r} has no such secret")
        kept = [s for s in current if s != secret]
    if not kept:
        raise ConfigError(
            f"source {source_id!r} would have no secret left; add the new one first with "
            "`shoppulse sources rotate-secret`"
        )
    removed = len(current) - len(kept)
    if removed:
        _set_secrets(table, kept)
        _write(path, doc)
    return removed


def _set_secrets(table: Table | Any, values: list[str]) -> None:
    array = tomlkit.array()
    array.extend(values)
    table["secrets"] = array
