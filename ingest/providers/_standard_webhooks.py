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
_UNIX_SECONDS = re.compile(r"0|[1-9][0-9]{0,14}")

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


#: Senders built on Svix send the same scheme under Svix's names.
SVIX_HEADERS = ("svix-id", "svix-timestamp", "svix-signature")
HEADERS = (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER)


def has_signature(headers: Headers) -> bool:
    return bool(headers.get(SIGNATURE_HEADER, "").strip())


def scheme_headers(headers: Headers, *, svix: bool = False) -> tuple[str, str, str]:
    """The names of the id, timestamp and signature headers this delivery uses: the standard
    `webhook-*` ones, or (with `svix`) Svix's `svix-*` ones when no `webhook-signature` is sent."""
    if svix and SIGNATURE_HEADER not in headers and SVIX_HEADERS[2] in headers:
        return SVIX_HEADERS
    return HEADERS


def message_id(headers: Headers, *, svix: bool = False) -> str:
    """The message id (`webhook-id`, or `svix-id` for a Svix-branded delivery), stripped."""
    return headers.get(scheme_headers(headers, svix=svix)[0], "").strip()


def verify(
    body: bytes,
    headers: Headers,
    keys: Sequence[bytes],
    now: datetime,
    tolerance_seconds: int,
    *,
    svix: bool = False,
) -> None:
    """Raise SignatureError unless `body` carries a valid, fresh v1 signature by one of `keys`.

    With `svix`, Svix-branded headers (`svix-id`, ...) are read when `webhook-signature` is absent.
    Only the first 16 entries of the signature list are read (a real sender lists one per key).
    """
    id_name, stamp_name, signature_name = scheme_headers(headers, svix=svix)
    msg_id = headers.get(id_name, "").strip()
    stamp = headers.get(stamp_name, "").strip()
    listed = headers.get(signature_name, "").strip()
    for name, value in ((id_name, msg_id), (stamp_name, stamp), (signature_name, listed)):
        if not value:
            raise SignatureError(f"missing {name} header")
    if not msg_id.isascii():
        # A server decodes header bytes as latin-1 while senders sign the UTF-8 text: refuse
        # rather than compare two different strings.
        raise SignatureError(f"{id_name} must be ASCII text (printable characters)")
    if not keys:
        raise SignatureError("no usable signing secret is configured for this source")
    given = [
        entry.partition(",")[2]
        for entry in listed.split()[:_MAX_SIGNATURES]
        if entry.partition(",")[0] == "v1"
    ]
    if not given:
        raise SignatureError(f"{signature_name} has no v1 signature")
    matched = False
    for key in keys:
        expected = signature(key, msg_id, stamp, body).encode("ascii")
        for candidate in given:
            if hmac.compare_digest(expected, candidate.encode("utf-8", "surrogatepass")):
                matched = True
    if not matched:
        raise SignatureError(f"{signature_name} does not match the body for any secret")
    check_timestamp(stamp, now, tolerance_seconds)


def is_unix_seconds(stamp: str) -> bool:
    """True for a plain decimal integer: what is signed is what is checked, so `+1614265330` or
    `01614265330` (which int() reads as the same moment) are refused."""
    return _UNIX_SECONDS.fullmatch(stamp) is not None


def check_timestamp(stamp: str, now: datetime, tolerance_seconds: int) -> None:
    """Raise SignatureError unless the Unix-seconds `stamp` is within the tolerance of `now`."""
    if not is_unix_seconds(stamp):
        raise SignatureError(
            f"the signed timestamp is not Unix seconds written as a plain decimal integer "
            f"(no sign, no leading zero): {stamp[:20]!r}"
        )
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
