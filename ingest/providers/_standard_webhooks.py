"""The Standard Webhooks signature scheme (https://www.standardwebhooks.com), shared by adapters.

A sender puts three headers on a delivery:

- `webhook-id`: the message id, unchanged when the sender retries;
- `webhook-timestamp`: integer Unix seconds when the attempt was signed;
- `webhook-signature`: a space-separated list of `<version>,<signature>` entries. For the
  symmetric scheme the version is `v1` and the signature is the base64 HMAC-SHA256, keyed with the
  shared key, of the bytes `"{webhook-id}.{webhook-timestamp}." + raw body`.

A delivery is authentic when any `v1` entry equals the signature computed with any configured key
(every pair is compared in constant time, with no early exit), and its timestamp is within the
tolerance of the service clock in either direction (replay protection). Other versions (such as
the asymmetric `v1a`) are ignored.

How the key is derived from the configured secret differs by sender, so callers pass keys:
the Standard Webhooks `whsec_<base64>` secret decodes to its key (`decode_secret`); BigCommerce
keys with the client secret's own bytes.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from collections.abc import Sequence
from datetime import datetime

from ingest.providers.base import Headers, SignatureError, hmac_sha256

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
SECRET_PREFIX = "whsec_"
_BASE64_ALPHABET = re.compile(r"[A-Za-z0-9+/]+")

#: The longest signature list worth parsing; a real sender lists one entry per active key.
_MAX_SIGNATURES = 16


def decode_secret(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: base64-decode it, `whsec_` prefix optional.

    Raises ValueError when the secret is not valid base64 (or decodes to nothing).
    """
    encoded = secret.strip().removeprefix(SECRET_PREFIX)
    missing = -len(encoded) % 4
    if missing and _BASE64_ALPHABET.fullmatch(encoded):
        # The reference libraries disagree here (Python pads, Go and Svix refuse); ShopPulse
        # refuses everywhere, saying how to write the same key so that every library reads it.
        raise ValueError(
            f"the base64 after whsec_ lacks its padding: add {'=' * missing!r} at the end "
            "(the key stays the same)"
        )
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the secret is not whsec_<base64>") from None
    if not key:
        raise ValueError("the secret is empty")
    return key


def signature(key: bytes, message_id: str, timestamp: str, body: bytes) -> str:
    """The base64 v1 signature of `body` for this message id and timestamp."""
    content = f"{message_id}.{timestamp}.".encode() + body
    return base64.b64encode(hmac_sha256(key, content)).decode("ascii")


def sign(key: bytes, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers a sender attaches to `body`."""
    stamp = str(timestamp)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": stamp,
        "webhook-signature": "v1," + signature(key, message_id, stamp, body),
    }


def has_signature(headers: Headers) -> bool:
    return bool(headers.get(SIGNATURE_HEADER, "").strip())


def verify(
    body: bytes,
    headers: Headers,
    keys: Sequence[bytes],
    now: datetime,
    tolerance_seconds: int,
) -> None:
    """Raise SignatureError unless `body` carries a valid, fresh v1 signature by one of `keys`."""
    message_id = headers.get(ID_HEADER, "").strip()
    stamp = headers.get(TIMESTAMP_HEADER, "").strip()
    listed = headers.get(SIGNATURE_HEADER, "").strip()
    required = ((ID_HEADER, message_id), (TIMESTAMP_HEADER, stamp), (SIGNATURE_HEADER, listed))
    for name, value in required:
        if not value:
            raise SignatureError(f"missing {name} header")
    if not keys:
        raise SignatureError("no usable signing secret is configured for this source")
    given = [
        entry.partition(",")[2]
        for entry in listed.split()[:_MAX_SIGNATURES]
        if entry.partition(",")[0] == "v1"
    ]
    if not given:
        raise SignatureError("webhook-signature has no v1 signature")
    matched = False
    for key in keys:
        expected = signature(key, message_id, stamp, body).encode("ascii")
        for candidate in given:
            if hmac.compare_digest(expected, candidate.encode("utf-8", "surrogatepass")):
                matched = True
    if not matched:
        raise SignatureError("webhook-signature does not match the body for any secret")
    check_timestamp(stamp, now, tolerance_seconds)


def check_timestamp(stamp: str, now: datetime, tolerance_seconds: int) -> None:
    """Raise SignatureError unless the Unix-seconds `stamp` is within the tolerance of `now`."""
    if not stamp.isascii() or not stamp.lstrip("-").isdigit() or len(stamp) > 15:
        raise SignatureError(f"the signed timestamp is not Unix seconds: {stamp[:20]!r}")
    skew = now.timestamp() - int(stamp)
    if skew > tolerance_seconds:
        raise SignatureError(
            f"the signed timestamp is {int(skew)} s old; the tolerance is {tolerance_seconds} s "
            "(a replay, or a clock far off)"
        )
    if -skew > tolerance_seconds:
        raise SignatureError(
            f"the signed timestamp is {int(-skew)} s in the future; the tolerance is "
            f"{tolerance_seconds} s (a clock far off)"
        )
