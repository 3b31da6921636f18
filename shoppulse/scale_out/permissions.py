"""Least privilege on the log: what each role may publish and subscribe to, as nats-server
permissions, and the `accounts` block that gives them to users (`shoppulse log permissions`).

- **intake** publishes deliveries and rejection counts, and reads the stream's configuration (the
  start check); it receives the log's acknowledgements on its own inbox. It can neither read a
  message of the stream nor manage it.
- **store** reads, creates and acknowledges only its own durable consumer (`store-<sources>`), reads
  the stream's configuration and the time of its oldest pending message (its lag).
- **admin** (`shoppulse log init`) manages the stream through the JetStream API.

Each role's answers arrive on an inbox only it may subscribe to (`_INBOX_<role>`, the client's
inbox prefix), so that no other role can read them: a shared `_INBOX.>` would let any client
subscribe to the deliveries a store fetches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shoppulse.scale_out.consumer import consumer_name
from shoppulse.scale_out.stream import DELIVERIES, REJECTIONS

API = "$JS.API"


@dataclass(frozen=True)
class Role:
    """One role's link: its inbox prefix and what it may publish and subscribe to."""

    name: str
    inbox: str
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]


def intake_role(stream: str) -> Role:
    inbox = "_INBOX_intake"
    return Role(
        "intake",
        inbox,
        publish=(f"{DELIVERIES}.*", f"{REJECTIONS}.*", f"{API}.STREAM.INFO.{stream}"),
        subscribe=(f"{inbox}.>",),
    )


def store_role(stream: str, sources: Sequence[str] | None = None) -> Role:
    consumer = consumer_name(sorted(sources) if sources else None)
    inbox = f"_INBOX_{consumer}"
    return Role(
        "store",
        inbox,
        publish=(
            f"{API}.STREAM.INFO.{stream}",
            f"{API}.STREAM.MSG.GET.{stream}",
            f"{API}.CONSUMER.CREATE.{stream}.{consumer}",
            f"{API}.CONSUMER.CREATE.{stream}.{consumer}.>",
            f"{API}.CONSUMER.DURABLE.CREATE.{stream}.{consumer}",
            f"{API}.CONSUMER.INFO.{stream}.{consumer}",
            f"{API}.CONSUMER.MSG.NEXT.{stream}.{consumer}",
            f"$JS.ACK.{stream}.{consumer}.>",
        ),
        subscribe=(f"{inbox}.>",),
    )


def admin_role() -> Role:
    inbox = "_INBOX_admin"
    return Role("admin", inbox, publish=(f"{API}.>",), subscribe=(f"{inbox}.>",))


def _list(subjects: Sequence[str]) -> str:
    return "[" + ", ".join(f'"{subject}"' for subject in subjects) + "]"


def permissions_block(role: Role) -> str:
    """The `permissions` value of a user of `role` (nats-server configuration)."""
    return (
        f"{{ publish: {{ allow: {_list(role.publish)} }}, "
        f"subscribe: {{ allow: {_list(role.subscribe)} }} }}"
    )


def accounts_config(users: Sequence[tuple[str, Role]], *, account: str = "SHOPPULSE") -> str:
    """An `accounts` block: one JetStream account whose users are `(credentials, role)`; the
    credentials part is the user's fields, e.g. `user: intake, password: "..."` or `nkey: U...`.
    """
    lines = ["accounts {", f"  {account} {{", "    jetstream: enabled", "    users: ["]
    for credentials, role in users:
        lines.append(f"      {{ {credentials}, permissions: {permissions_block(role)} }}")
    lines += ["    ]", "  }", "}"]
    return "\n".join(lines) + "\n"
