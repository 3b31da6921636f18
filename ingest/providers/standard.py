"""Standard Webhooks: for custom stores that post ShopPulse's canonical events themselves.

Signature: the Standard Webhooks v1 scheme (see `_standard_webhooks`). The source's secret is a
Standard Webhooks secret, `whsec_<base64>`; the HMAC key is the base64-decoded part (the prefix
is optional, as in the reference libraries). A signed timestamp further than the tolerance from
the service clock, in either direction, is rejected.

Senders built on Svix send the same scheme under Svix's header names (`svix-id`,
`svix-timestamp`, `svix-signature`); they are read when no `webhook-signature` is sent.

Delivery id: `webhook-id` (or `svix-id`; the same on retries). Topic: always `events`.

Body: `ingest.events.StandardEventBody`, i.e. `{"events": [CanonicalEvent, ...]}`, validated with
pydantic. A body that does not validate is quarantined with the field path of the first problems
(`events.0.gross_sales: ...`). docs/standard-webhooks.md shows how to send and the JSON Schema.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar

from pydantic import ValidationError

from ingest.events import CanonicalEvent, StandardEventBody
from ingest.providers import _standard_webhooks as swh
from ingest.providers.base import (
    DeliveryInfo,
    Headers,
    SignatureError,
    UnusableDelivery,
    body_digest,
)

TOPIC = "events"

#: How many validation problems a quarantine reason lists (it is cut at 300 characters anyway).
_REASONS_SHOWN = 3


def validation_reason(exc: ValidationError) -> str:
    """A quarantine reason naming the field path of each problem, e.g. `events.0.test: ...`."""
    errors = exc.errors()
    parts = []
    for error in errors[:_REASONS_SHOWN]:
        where = ".".join(str(part) for part in error["loc"]) or "body"
        parts.append(f"{where}: {error['msg']}")
    more = len(errors) - _REASONS_SHOWN
    suffix = f"; and {more} more" if more > 0 else ""
    return "invalid " + "; ".join(parts) + suffix


class StandardWebhooks:
    name: ClassVar[str] = "standard"
    topics: ClassVar[frozenset[str]] = frozenset({TOPIC})
    kept_headers: ClassVar[tuple[str, ...]] = (
        swh.ID_HEADER,
        swh.TIMESTAMP_HEADER,
        *swh.SVIX_HEADERS[:2],
        "user-agent",
    )
    single_headers: ClassVar[tuple[str, ...]] = (*swh.HEADERS, *swh.SVIX_HEADERS)

    def __init__(self, tolerance_seconds: int = 300) -> None:
        self.tolerance_seconds = tolerance_seconds

    def verify(self, body: bytes, headers: Headers, secrets: Sequence[str], now: datetime) -> None:
        keys = []
        for secret in secrets:
            try:
                keys.append(swh.decode_secret(secret))
            except ValueError:
                continue  # a malformed secret can verify nothing; the others may still match
        if not keys:
            raise SignatureError(
                "no configured secret of this source is a Standard Webhooks secret (whsec_<base64>)"
            )
        swh.verify(body, headers, keys, now, self.tolerance_seconds, svix=True)

    def is_ping(self, body: bytes, headers: Headers) -> bool:
        return False

    def delivery_info(self, body: bytes, headers: Headers, payload: Any) -> DeliveryInfo:
        delivery_id = swh.message_id(headers, svix=True) or body_digest(body)
        return DeliveryInfo(delivery_id=delivery_id[:256], topic=TOPIC)

    def normalize(self, topic: str, payload: Any, headers: Headers) -> list[CanonicalEvent]:
        try:
            body = StandardEventBody.model_validate(payload)
        except ValidationError as exc:
            raise UnusableDelivery(validation_reason(exc)) from None
        return list(body.events)

    def sign(
        self, body: bytes, secret: str, *, topic: str, delivery_id: str, timestamp: int
    ) -> dict[str, str]:
        """Standard Webhooks headers for `body`; `topic` is not sent (it is always `events`)."""
        headers = {"Content-Type": "application/json"}
        headers.update(swh.sign(swh.decode_secret(secret), delivery_id, timestamp, body))
        return headers
