"""Intake's signature on the log's messages: the store folds only what an intake replica verified.

Write access to the log must not be write access to the figures. Every message an intake replica
publishes (a delivery or rejection counts) carries `ShopPulse-Signature: v1=<base64 HMAC-SHA256>`
over the subject, the message id and the payload, with the first of the `[log] signing_keys` of
the sources file. The store checks it against every configured key, in constant time and without
an early exit (as the webhook signatures), so keys rotate like source secrets: add the new key
first everywhere, then make it the first, then drop the old one.

A delivery message without a valid signature is quarantined with its reason and never folded, nor
replayed (`ingest.replay.UNVERIFIED`); unsigned counts are dropped with an error in the log.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence

from pydantic import SecretStr

HEADER = "ShopPulse-Signature"
VERSION = "v1"
_CONTEXT = b"shoppulse-log-v1\n"


class MissingSigningKey(ValueError):
    """No `[log] signing_keys` in the sources file."""


def generate_key() -> str:
    """A new signing key: 32 random bytes, URL-safe base64."""
    return secrets.token_urlsafe(32)


def _signed(subject: str, msg_id: str, data: bytes) -> bytes:
    return b"".join((_CONTEXT, subject.encode(), b"\n", msg_id.encode(), b"\n", data))


class LogSigner:
    """Signs with the first key, verifies with any (see the module docstring)."""

    def __init__(self, keys: Sequence[SecretStr]) -> None:
        if not keys:
            raise MissingSigningKey(
                'no log signing key: add `[log]` with `signing_keys = ["..."]` to the sources '
                "file of every intake replica and store (`shoppulse log keygen --config FILE` "
                "adds one; docs/scale-out.md#signed-messages)"
            )
        self._keys = [key.get_secret_value().encode() for key in keys]

    def _mac(self, key: bytes, subject: str, msg_id: str, data: bytes) -> bytes:
        return hmac.new(key, _signed(subject, msg_id, data), hashlib.sha256).digest()

    def sign(self, subject: str, msg_id: str, data: bytes) -> str:
        mac = self._mac(self._keys[0], subject, msg_id, data)
        return f"{VERSION}={base64.b64encode(mac).decode()}"

    def headers(self, subject: str, msg_id: str, data: bytes) -> dict[str, str]:
        """The headers of a message to publish: its id and its signature."""
        return {"Nats-Msg-Id": msg_id, HEADER: self.sign(subject, msg_id, data)}

    def problem(self, subject: str, headers: dict[str, str] | None, data: bytes) -> str | None:
        """None when a configured key signed the message, else what is wrong with it."""
        headers = headers or {}
        signature = headers.get(HEADER)
        if not signature:
            return "no intake signature"
        version, _, encoded = signature.partition("=")
        try:
            given = base64.b64decode(encoded, validate=True)
        except ValueError:
            given = b""
        if version != VERSION or not given:
            return "a malformed intake signature"
        msg_id = headers.get("Nats-Msg-Id", "")
        matched = False
        for key in self._keys:  # every key, no early exit: timing does not tell which matched
            matched |= hmac.compare_digest(self._mac(key, subject, msg_id, data), given)
        return None if matched else "an intake signature that no signing key verifies"
