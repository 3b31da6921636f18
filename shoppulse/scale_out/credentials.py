"""Credentials and TLS of the links to the log, read from the settings, and their redaction.

A link authenticates one way at a time, the ways NATS deployments use: a `.creds` file (user JWT
and nkey seed, as `nsc` makes it), an nkey seed file, a token, or a user and password (the token
and the password from the environment or a file, never only from the command line; credentials in
the URL also work but show in process lists). TLS is on with a `tls://` URL, a CA file or a client
certificate; then the link refuses a server that does not speak TLS before it sends anything.

Secrets never leave this module in clear: `redact` takes them out of any text (an error of the
client, a URL) before it reaches a log line, an answer or a message.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from shoppulse.scale_out.settings import LogSettings

#: What replaces a secret in text.
REDACTED = "***"
#: Where the ways to authenticate are explained.
DOCS = "docs/scale-out.md#credentials"


class CredentialsError(ValueError):
    """The link's credentials or TLS settings cannot be used; the message says what to change."""


@dataclass(frozen=True)
class LinkSecurity:
    """How a link authenticates and encrypts: `Client.connect` options and what to redact."""

    options: dict[str, Any] = field(default_factory=dict)
    method: str = "none"  # what the messages call it: "token", "user intake", "creds file" ...
    hint: str = "no credentials are configured"  # where they came from, for a refusal
    tls: bool = False
    secrets: tuple[str, ...] = ()

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """`text` with every secret (longest first) replaced by `REDACTED`."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def url_secrets(url: str) -> tuple[str, ...]:
    """The password (nats://user:PASSWORD@host) or token (nats://TOKEN@host) of a URL."""
    try:
        parts = urlsplit(url if "://" in url else f"nats://{url}")
    except ValueError:
        return ()
    if parts.password:
        return (parts.password,)
    return (parts.username,) if parts.username else ()


def _read_secret(path: Path, setting: str) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise CredentialsError(
            f"cannot read {setting} ({path}): {exc.strerror or exc}; set it to a readable file "
            f"({DOCS})"
        ) from None
    if not text:
        raise CredentialsError(f"{setting} ({path}) is empty ({DOCS})")
    return text


def _readable(path: Path, setting: str) -> Path:
    if not path.is_file():
        raise CredentialsError(f"{setting} ({path}) is not a readable file ({DOCS})")
    return path


def _one_value(value: str | None, path: Path | None, name: str) -> tuple[str | None, str | None]:
    """A secret given directly (environment) or by file; (value, where it came from)."""
    upper = name.upper()
    if value is not None and path is not None:
        raise CredentialsError(
            f"both SHOPPULSE_LOG_{upper} and SHOPPULSE_LOG_{upper}_FILE are set; keep one"
        )
    if path is not None:
        return _read_secret(path, f"SHOPPULSE_LOG_{upper}_FILE"), f"SHOPPULSE_LOG_{upper}_FILE"
    if value is not None:
        if not value.strip():
            raise CredentialsError(f"SHOPPULSE_LOG_{upper} is empty")
        return value.strip(), f"SHOPPULSE_LOG_{upper}"
    return None, None


def _authentication(settings: LogSettings) -> LinkSecurity:
    token, token_from = _one_value(
        settings.token.get_secret_value() if settings.token else None, settings.token_file, "token"
    )
    password, password_from = _one_value(
        settings.password.get_secret_value() if settings.password else None,
        settings.password_file,
        "password",
    )
    in_url = tuple(secret for url in settings.servers for secret in url_secrets(url))
    ways = {
        "SHOPPULSE_LOG_CREDS_FILE": settings.creds_file is not None,
        "SHOPPULSE_LOG_NKEY_SEED_FILE": settings.nkey_seed_file is not None,
        token_from or "SHOPPULSE_LOG_TOKEN": token is not None,
        "SHOPPULSE_LOG_USER": settings.user is not None or password is not None,
        "credentials in the log URL": bool(in_url),
    }
    chosen = [name for name, used in ways.items() if used]
    if len(chosen) > 1:
        raise CredentialsError(
            f"the log link has several credentials ({', '.join(chosen)}); configure one ({DOCS})"
        )
    if settings.creds_file is not None:
        path = _readable(settings.creds_file, "SHOPPULSE_LOG_CREDS_FILE")
        if "BEGIN NATS USER JWT" not in path.read_text(encoding="utf-8", errors="replace"):
            raise CredentialsError(
                f"SHOPPULSE_LOG_CREDS_FILE ({path}) is not a NATS .creds file (no user JWT); "
                f"make one with `nsc generate creds` ({DOCS})"
            )
        return LinkSecurity(
            {"user_credentials": str(path)},
            "creds file",
            f"the .creds file of SHOPPULSE_LOG_CREDS_FILE ({path})",
        )
    if settings.nkey_seed_file is not None:
        path = _readable(settings.nkey_seed_file, "SHOPPULSE_LOG_NKEY_SEED_FILE")
        seed = _read_secret(path, "SHOPPULSE_LOG_NKEY_SEED_FILE")
        if not seed.startswith("SU"):
            raise CredentialsError(
                f"SHOPPULSE_LOG_NKEY_SEED_FILE ({path}) does not hold a user nkey seed (SU...); "
                f"make one with `nsc generate nkey --user` ({DOCS})"
            )
        return LinkSecurity(
            {"nkeys_seed_str": seed},
            "nkey",
            f"the nkey seed of SHOPPULSE_LOG_NKEY_SEED_FILE ({path})",
            secrets=(seed,),
        )
    if token is not None:
        return LinkSecurity(
            {"token": token}, "token", f"the token of {token_from}", secrets=(token,)
        )
    if settings.user is not None or password is not None:
        if settings.user is None or password is None:
            raise CredentialsError(
                "a user needs a password and a password a user: set SHOPPULSE_LOG_USER and "
                f"SHOPPULSE_LOG_PASSWORD (or SHOPPULSE_LOG_PASSWORD_FILE) ({DOCS})"
            )
        return LinkSecurity(
            {"user": settings.user, "password": password},
            f"user {settings.user}",
            f"user {settings.user} (SHOPPULSE_LOG_USER) with the password of {password_from}",
            secrets=(password,),
        )
    if in_url:
        return LinkSecurity({}, "URL credentials", "the credentials in the log URL", secrets=in_url)
    return LinkSecurity()


def _tls_context(settings: LogSettings) -> ssl.SSLContext | None:
    schemes = {
        urlsplit(url if "://" in url else f"nats://{url}").scheme for url in settings.servers
    }
    wanted = (
        "tls" in schemes
        or settings.tls_ca_file is not None
        or settings.tls_cert_file is not None
        or settings.tls_key_file is not None
    )
    if not wanted:
        return None
    if (settings.tls_cert_file is None) != (settings.tls_key_file is None):
        raise CredentialsError(
            "a client certificate needs its key: set both SHOPPULSE_LOG_TLS_CERT_FILE and "
            f"SHOPPULSE_LOG_TLS_KEY_FILE, or neither ({DOCS})"
        )
    try:
        if settings.tls_ca_file is not None:
            _readable(settings.tls_ca_file, "SHOPPULSE_LOG_TLS_CA_FILE")
            context = ssl.create_default_context(cafile=str(settings.tls_ca_file))
        else:
            context = ssl.create_default_context()
        if settings.tls_cert_file is not None and settings.tls_key_file is not None:
            _readable(settings.tls_cert_file, "SHOPPULSE_LOG_TLS_CERT_FILE")
            _readable(settings.tls_key_file, "SHOPPULSE_LOG_TLS_KEY_FILE")
            context.load_cert_chain(str(settings.tls_cert_file), str(settings.tls_key_file))
    except ssl.SSLError as exc:
        raise CredentialsError(
            f"the TLS files of the log link cannot be used: {exc.reason or exc}; check "
            "SHOPPULSE_LOG_TLS_CA_FILE, SHOPPULSE_LOG_TLS_CERT_FILE and "
            f"SHOPPULSE_LOG_TLS_KEY_FILE (PEM) ({DOCS})"
        ) from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def link_security(settings: LogSettings) -> LinkSecurity:
    """The credentials and TLS of `settings`, or CredentialsError naming the setting to fix."""
    auth = _authentication(settings)
    context = _tls_context(settings)
    if context is None:
        return auth
    return LinkSecurity(
        {**auth.options, "tls": context},
        auth.method,
        auth.hint,
        tls=True,
        secrets=auth.secrets,
    )
