"""What the store does with a delivery message that intake did not sign: quarantine, never fold.

The message is kept as a quarantined delivery so an operator sees it (`shoppulse quarantine
list`): its source is the subject's, its delivery id `unverified:<sha-256 of the message>` (so a
forged message can never take the id of a genuine delivery and make the genuine one a duplicate),
its body the body it carries (or the whole message when it is not a delivery message), and its
reason starts with `ingest.replay.UNVERIFIED`, which replay never moves out of quarantine.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

from ingest.replay import UNVERIFIED
from ingest.storage.writer import Delivery
from shoppulse.scale_out import envelope
from shoppulse.scale_out.stream import DELIVERIES

_SOURCE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def unverified_delivery(subject: str, data: bytes, problem: str) -> Delivery:
    """The quarantined delivery that stands for an unsigned or badly signed message."""
    source = subject.removeprefix(DELIVERIES + ".")
    if not _SOURCE.fullmatch(source):
        source = "_unknown"
    digest = hashlib.sha256(data).hexdigest()[:32]
    topic, claimed = "unknown", ""
    body: bytes | None = data
    try:
        decoded = envelope.decode(data)
    except envelope.MalformedMessage:
        pass
    else:
        topic, body = decoded.topic[:128], decoded.body
        claimed = f"; it claims delivery {decoded.delivery_id[:80]!r}"
    return Delivery(
        source=source,
        delivery_id=f"unverified:{digest}",
        topic=topic,
        received_at=datetime.now(UTC),
        headers="{}",
        body=body,
        reason=f"{UNVERIFIED}: {problem}{claimed}; not folded, never replayed"[:300],
    )
