"""The adapter interface every store platform implements, and helpers they share.

An adapter knows one platform's quirks: how it signs, which headers carry the delivery id and the
topic, and how its payloads become canonical events. It does no I/O.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, Protocol

from pydantic import ValidationError

from ingest.events import CanonicalEvent, OrderLine

Headers = Mapping[str, str]
"""Request headers with lower-case names (HTTP/2 sends them lower-cased anyway)."""


class SignatureError(Exception):
    """The delivery is not authentic: 401, nothing stored but a count and this reason."""


class UnusableDelivery(Exception):
    """Authentic but cannot be normalized: the delivery goes to quarantine with this reason."""


@dataclass(frozen=True, slots=True)
class DeliveryInfo:
    """What identifies a delivery, read before normalization."""

    delivery_id: str
    topic: str


class Provider(Protocol):
    """One store platform. Implementations live in `ingest/providers/<name>.py`."""

    name: ClassVar[str]
    topics: ClassVar[frozenset[str]]
    #: Lower-case names of the headers worth keeping with the raw delivery (never a signature).
    kept_headers: ClassVar[tuple[str, ...]]
    #: Lower-case names of the headers that must appear at most once (signature, timestamp, id,
    #: topic): a repeated one is ambiguous (which line is checked?) and is refused with 401.
    single_headers: ClassVar[tuple[str, ...]]

    def verify(self, body: bytes, headers: Headers, secrets: Sequence[str], now: datetime) -> None:
        """Raise SignatureError unless one of `secrets` signed `body` (constant-time compare)."""

    def is_ping(self, body: bytes, headers: Headers) -> bool:
        """True for a platform's set-up ping that must get a bare 200 and store nothing."""

    def delivery_info(self, body: bytes, headers: Headers, payload: Any) -> DeliveryInfo:
        """The delivery id (unique per delivery, unchanged on retries) and the topic.

        `payload` is the parsed JSON, or None when the body is not JSON.
        """

    def normalize(self, topic: str, payload: Any, headers: Headers) -> list[CanonicalEvent]:
        """Canonical events for this delivery; raise UnusableDelivery with a precise reason."""

    def sign(
        self, body: bytes, secret: str, *, topic: str, delivery_id: str, timestamp: int
    ) -> dict[str, str]:
        """The headers the platform would send with `body` (for tests and the simulator)."""


# ----------------------------------------------------------------------------- signatures


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def b64_hmac_sha256(key: bytes, message: bytes) -> str:
    return base64.b64encode(hmac_sha256(key, message)).decode("ascii")


def any_secret_matches(expected_for: Any, given: str, secrets: Sequence[str]) -> bool:
    """True when `given` equals `expected_for(secret)` for some secret, compared in constant time.

    Every secret is tried (no early exit on the first match) so timing does not reveal which
    secret of a rotation pair matched.
    """
    given_bytes = given.encode("utf-8", "surrogatepass")
    matched = False
    for secret in secrets:
        expected: str = expected_for(secret)
        if hmac.compare_digest(expected.encode("ascii"), given_bytes):
            matched = True
    return matched


def body_digest(body: bytes) -> str:
    """A stable stand-in delivery id for senders that send none: the body's SHA-256."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


# ----------------------------------------------------------------------------- topics

TOPIC_MISMATCH = "topic does not match the signed body"


def topic_mismatch(topic: str, needs: str, found: str) -> UnusableDelivery:
    """The quarantine reason of a delivery whose unsigned topic header contradicts its body.

    Shopify and WooCommerce sign only the body, so a captured authentic body can be re-sent under
    another topic; the topic is believed only where the body agrees with it (docs/security.md).
    """
    return UnusableDelivery(f"{TOPIC_MISMATCH}: {topic[:80]!r} needs {needs}; the body is {found}")


def is_deletion_body(obj: Mapping[str, Any]) -> bool:
    """A deletion notice: `{"id": ...}` and nothing else (Shopify and WooCommerce send these)."""
    return len(obj) == 1 and "id" in obj


# ----------------------------------------------------------------------------- payload helpers


def require_mapping(payload: Any, what: str = "payload") -> Mapping[str, Any]:
    if not isinstance(payload, Mapping):
        raise UnusableDelivery(f"{what} must be a JSON object, got {type(payload).__name__}")
    return payload


def get_id(obj: Mapping[str, Any], field: str, *, required: bool = True) -> str | None:
    """An id field as a string: ids arrive as JSON strings or integers."""
    value = obj.get(field)
    if value is None or value == "":
        if required:
            raise UnusableDelivery(f"field '{field}' is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise UnusableDelivery(
            f"field '{field}' must be a string or integer, got {type(value).__name__}"
        )
    text = str(value)
    if len(text) > 256:
        raise UnusableDelivery(f"field '{field}' is longer than 256 characters")
    return text


def parse_time(obj: Mapping[str, Any], field: str, *, required: bool = True) -> datetime | None:
    """An ISO 8601 timestamp with offset, as UTC."""
    value = obj.get(field)
    if value is None or value == "":
        if required:
            raise UnusableDelivery(f"field '{field}' is missing")
        return None
    if not isinstance(value, str):
        raise UnusableDelivery(f"field '{field}' must be an ISO 8601 string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UnusableDelivery(
            f"field '{field}' is not an ISO 8601 timestamp: {value[:40]!r}"
        ) from None
    if parsed.tzinfo is None:
        raise UnusableDelivery(f"field '{field}' has no UTC offset: {value[:40]!r}")
    return parsed.astimezone(UTC)


def parse_money(value: Any, field: str) -> Decimal:
    """A money amount given as a decimal string or a JSON number, exactly."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise UnusableDelivery(f"field '{field}' must be a decimal amount")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise UnusableDelivery(
            f"field '{field}' is not a decimal amount: {str(value)[:40]!r}"
        ) from None
    if not amount.is_finite():
        raise UnusableDelivery(f"field '{field}' is not a finite amount")
    return amount


def build_event(**fields: Any) -> CanonicalEvent:
    """A CanonicalEvent, with a validation failure turned into a quarantine reason."""
    try:
        return CanonicalEvent(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "event"
        raise UnusableDelivery(f"invalid {where}: {first['msg']}") from None


def optional_text(value: Any, limit: int = 512) -> str | None:
    """A non-empty string field (cut to `limit` characters), else None."""
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()[:limit]


def build_lines(lines: Sequence[Mapping[str, Any]] | None) -> tuple[OrderLine, ...] | None:
    """Canonical order lines from their fields; None (lines not known) when any line is unusable.

    A malformed line item never keeps an order out of the figures: the order's amounts come from
    its totals, and its lines are simply not published.
    """
    if lines is None:
        return None
    try:
        return tuple(OrderLine(**line) for line in lines)
    except (ValidationError, TypeError):
        return None
