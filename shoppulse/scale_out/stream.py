"""The stream that holds the deliveries: its subjects, its configuration, `log init` and the check
every role makes at start.

Subjects are `shoppulse.deliveries.<source>` (one authentic delivery each) and
`shoppulse.rejections.<source>` (rejection counts of intake replicas), so a store can take a set of
sources with a subject filter. The stream keeps messages on disk, refuses new ones when full
(`discard new`: intake answers 503, nothing already acknowledged is dropped) and remembers message
ids for a window, within which a repeated delivery is not stored twice.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig, StreamInfo
from nats.js.errors import NotFoundError

from shoppulse.scale_out.connection import LogClient, LogUnavailable, connect
from shoppulse.scale_out.settings import DEFAULT_DUPLICATE_WINDOW, LogSettings

SUBJECT_PREFIX = "shoppulse"
DELIVERIES = f"{SUBJECT_PREFIX}.deliveries"
REJECTIONS = f"{SUBJECT_PREFIX}.rejections"
SUBJECTS = (f"{DELIVERIES}.*", f"{REJECTIONS}.*")

DEFAULT_MAX_BYTES = 8 * 1024**3
DEFAULT_MAX_AGE_DAYS = 7.0

_UNITS = {"": 1, "b": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4}
_BINARY = {"ki": 1024, "mi": 1024**2, "gi": 1024**3, "ti": 1024**4}


def delivery_subject(source: str) -> str:
    return f"{DELIVERIES}.{source}"


def rejection_subject(source: str) -> str:
    return f"{REJECTIONS}.{source}"


def filter_subjects(sources: list[str] | None) -> list[str]:
    """The subjects a store with `--sources` takes (all of them without)."""
    if not sources:
        return list(SUBJECTS)
    return [
        subject(source) for source in sources for subject in (delivery_subject, rejection_subject)
    ]


def parse_bytes(text: str) -> int:
    """`8GiB`, `500MB`, `1000000` -> bytes."""
    match = re.fullmatch(r"\s*(\d+)\s*([kmgt]i?|b)?b?\s*", text.lower())
    if match is None:
        raise ValueError(f"'{text}' is not a size; write e.g. 8GiB, 500MB or 1000000")
    number, unit = int(match.group(1)), match.group(2) or ""
    size = number * (_BINARY.get(unit) or _UNITS[unit])
    if size < 1024 * 1024:
        raise ValueError(f"'{text}' is less than 1 MiB; the log needs room for a few deliveries")
    return size


@dataclass(frozen=True)
class StreamSpec:
    """What `shoppulse log init` creates."""

    name: str
    replicas: int = 1
    max_bytes: int = DEFAULT_MAX_BYTES
    duplicate_window: float = DEFAULT_DUPLICATE_WINDOW
    max_age_days: float = DEFAULT_MAX_AGE_DAYS  # raw bodies in the log are gone after it

    def config(self) -> StreamConfig:
        return StreamConfig(
            name=self.name,
            description="ShopPulse webhook deliveries (docs/scale-out.md)",
            subjects=list(SUBJECTS),
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            discard=DiscardPolicy.NEW,
            max_bytes=self.max_bytes,
            num_replicas=self.replicas,
            duplicate_window=self.duplicate_window,
            max_age=self.max_age_days * 86400,
        )


def _differences(spec: StreamSpec, current: StreamConfig) -> list[str]:
    wanted = spec.config()
    changes = []
    for name in (
        "subjects",
        "discard",
        "max_bytes",
        "num_replicas",
        "duplicate_window",
        "max_age",
    ):
        old, new = getattr(current, name), getattr(wanted, name)
        if name == "subjects":
            old, new = sorted(old or []), sorted(new or [])
        if old != new:
            changes.append(f"{name} {old} -> {new}")
    return changes


async def ensure_stream(js: JetStreamContext, spec: StreamSpec) -> tuple[str, list[str]]:
    """Create the stream or bring it to `spec`; returns ("created"|"updated"|"unchanged", what
    changed). Idempotent: running it again with the same spec changes nothing."""
    try:
        info = await js.stream_info(spec.name)
    except NotFoundError:
        await js.add_stream(spec.config())
        return "created", []
    if info.config.storage != StorageType.FILE:
        raise LogUnavailable(
            f"stream {spec.name} keeps its messages in {info.config.storage}, not on disk; "
            "storage cannot be changed: delete the stream (nats stream rm) or use another name"
        )
    changes = _differences(spec, info.config)
    if not changes:
        return "unchanged", []
    await js.update_stream(spec.config())
    return "updated", changes


async def check_stream(js: JetStreamContext, name: str, url: str) -> StreamInfo:
    """The stream's info, or LogUnavailable saying what is missing and how to fix it."""
    fix = f"run `shoppulse log init --log {url}`"
    try:
        info = await js.stream_info(name)
    except NotFoundError:
        raise LogUnavailable(f"the log at {url} has no stream {name}; {fix}") from None
    except Exception as exc:
        raise LogUnavailable(
            f"cannot read stream {name} of the log at {url}: {type(exc).__name__}: {exc} "
            "(is JetStream enabled, and does the cluster have a quorum?)"
        ) from None
    config = info.config
    problems = []
    missing = set(SUBJECTS) - set(config.subjects or [])
    if missing:
        problems.append(f"it lacks the subjects {', '.join(sorted(missing))}")
    if config.storage != StorageType.FILE:
        problems.append("it keeps messages in memory, not on disk")
    if config.discard != DiscardPolicy.NEW:
        problems.append("it discards old messages when full (they may not be stored yet)")
    if not config.duplicate_window:
        problems.append("it has no duplicate window")
    if not config.max_age:
        problems.append("it keeps messages forever (no maximum age), raw bodies with them")
    if config.retention != RetentionPolicy.LIMITS:
        problems.append(f"its retention is {config.retention}, not limits")
    if problems:
        raise LogUnavailable(
            f"stream {name} of the log at {url} is misconfigured: {'; '.join(problems)}; {fix}"
        )
    return info


def denied_message(settings: LogSettings, denied: str) -> str:
    return (
        f"the log at {settings.display_url} refused this role a permission ({denied}): give its "
        "user the permissions of `shoppulse log permissions` (docs/scale-out.md#permissions)"
    )


#: Room a message needs beyond the raw body (metadata and canonical events).
ENVELOPE_ROOM = 256 * 1024


async def open_checked(
    settings: LogSettings, *, name: str, max_body_bytes: int, inbox: str = "_INBOX"
) -> tuple[LogClient, JetStreamContext, StreamInfo]:
    """Connect to the log and check the stream (the start of every role), or LogUnavailable.
    `inbox` is the role's inbox prefix (shoppulse.scale_out.permissions)."""
    nc = await connect(settings, name=name, inbox=inbox)
    try:
        js = nc.jetstream(timeout=settings.publish_timeout_seconds)
        try:
            info = await check_stream(js, settings.stream, settings.display_url)
        except LogUnavailable:
            with contextlib.suppress(Exception):  # the server's permission error, if any
                await nc.flush(timeout=1)
            if nc.denied is None:
                raise
            raise LogUnavailable(denied_message(settings, nc.denied)) from None
        if nc.max_payload < max_body_bytes + ENVELOPE_ROOM:
            raise LogUnavailable(
                f"the log at {settings.display_url} takes messages of at most {nc.max_payload} "
                f"bytes, less than a delivery of max_body_bytes ({max_body_bytes}) needs; set "
                f"max_payload in the server's configuration to at least "
                f"{max_body_bytes + ENVELOPE_ROOM} (docs/scale-out.md)"
            )
    except BaseException:
        await nc.close()
        raise
    return nc, js, info
