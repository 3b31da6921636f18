"""A delivery as a log message, and back: the raw body as received plus what intake decided.

A message is a 4-byte big-endian length, that many bytes of JSON metadata (source, delivery id,
topic, received time, kept headers, the quarantine reason or the canonical events), then the raw
body. The store turns it back into the very `Delivery` the embedded service would have written.
"""

from __future__ import annotations

import struct
from datetime import datetime
from typing import Any

import orjson
from pydantic import TypeAdapter

from ingest.events import CanonicalEvent
from ingest.storage.writer import Delivery

VERSION = 1
_LENGTH = struct.Struct(">I")
_EVENTS = TypeAdapter(list[CanonicalEvent])


class MalformedMessage(ValueError):
    """A message on the deliveries subjects that is not a delivery of this format."""


def message_id(source: str, delivery_id: str) -> str:
    """The log's deduplication key of a delivery (`Nats-Msg-Id`)."""
    return f"{source}:{delivery_id}"


def encode(delivery: Delivery) -> bytes:
    meta = {
        "v": VERSION,
        "source": delivery.source,
        "delivery_id": delivery.delivery_id,
        "topic": delivery.topic,
        "received_at": delivery.received_at.isoformat(),
        "headers": delivery.headers,
        "reason": delivery.reason,
        "has_body": delivery.body is not None,
        "events": orjson.Fragment(_EVENTS.dump_json(delivery.events)),
    }
    encoded = orjson.dumps(meta)
    return _LENGTH.pack(len(encoded)) + encoded + (delivery.body or b"")


def decode(data: bytes) -> Delivery:
    try:
        (length,) = _LENGTH.unpack_from(data)
        meta: dict[str, Any] = orjson.loads(data[_LENGTH.size : _LENGTH.size + length])
        if meta.get("v") != VERSION:
            raise MalformedMessage(f"unknown message version {meta.get('v')!r}")
        body = data[_LENGTH.size + length :] if meta["has_body"] else None
        return Delivery(
            source=meta["source"],
            delivery_id=meta["delivery_id"],
            topic=meta["topic"],
            received_at=datetime.fromisoformat(meta["received_at"]),
            headers=meta["headers"],
            body=body,
            reason=meta["reason"],
            events=_EVENTS.validate_python(meta["events"]),
        )
    except MalformedMessage:
        raise
    except (struct.error, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise MalformedMessage(f"not a delivery message: {type(exc).__name__}: {exc}") from None


def encode_counts(replica: str, counts: dict[tuple[str, str], int]) -> bytes:
    """Rejection counts of one source: {(outcome, reason): count}."""
    rows = [[outcome, reason, count] for (outcome, reason), count in counts.items()]
    return orjson.dumps({"v": VERSION, "replica": replica, "counts": rows})


def decode_counts(data: bytes) -> list[tuple[str, str, int]]:
    try:
        meta = orjson.loads(data)
        return [(str(o), str(r)[:200], int(c)) for o, r, c in meta["counts"]]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise MalformedMessage(f"not a counts message: {type(exc).__name__}: {exc}") from None
