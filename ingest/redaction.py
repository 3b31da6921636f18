"""Personal data in raw bodies: the customer fields replaced before an accepted body is stored.

With `redact_personal_data` on, the intake stores the raw body of an accepted delivery with every
field named below (at any depth, names compared without case) replaced by "[redacted]", whatever
its value: a string, a number, or a whole object such as `customer` or `billing_address`.

The signature was verified on the original bytes and the canonical events were made from the
original payload before redaction, and canonical events hold no personal data, so metrics are the
same with or without redaction. The stored body is re-serialized JSON: it no longer matches the
sender's signature.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

REDACTED = "[redacted]"

#: Field names that hold personal data in the supported platforms' payloads: Shopify
#: (customer, addresses, client_details, note), WooCommerce (billing, shipping, customer_ip_address,
#: customer_note), BigCommerce (billing_address, customer_message), Stripe (customer_details,
#: shipping_details, receipt_email).
PERSONAL_FIELDS = frozenset(
    {
        "email",
        "contact_email",
        "customer_email",
        "receipt_email",
        "phone",
        "phone_number",
        "first_name",
        "last_name",
        "full_name",
        "customer",
        "customer_details",
        "billing",
        "shipping",
        "billing_address",
        "shipping_address",
        "shipping_addresses",
        "billing_details",
        "shipping_details",
        "default_address",
        "addresses",
        "browser_ip",
        "client_details",
        "ip_address",
        "customer_ip_address",
        "customer_user_agent",
        "note",
        "customer_note",
        "customer_message",
    }
)


def redact(payload: Any) -> Any:
    """`payload` (parsed JSON) with every personal field replaced, changed in place and returned.

    Iterative, so that the deepest nesting the JSON parser accepts cannot exhaust the stack.
    """
    stack: list[Any] = [payload]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(key, str) and key.lower() in PERSONAL_FIELDS:
                    node[key] = REDACTED
                elif isinstance(value, dict | list):
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(item for item in node if isinstance(item, dict | list))
    return payload


def redacted_body(payload: Any) -> bytes | None:
    """The redacted payload as JSON bytes; None when it cannot be written back (too deep)."""
    redacted = redact(payload)
    try:
        return orjson.dumps(redacted)
    except TypeError:  # orjson stops at 255 levels of nesting
        pass
    try:
        return json.dumps(redacted, ensure_ascii=False, separators=(",", ":")).encode()
    except (RecursionError, ValueError, TypeError):
        return None
