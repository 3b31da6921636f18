"""The health panel's line about reconciliation: what the webhooks missed and what needs a hand.

Made from `GET /api/v1/reconciliation` (see docs/reconciliation.md): "12 orders missed by webhooks
in the last 7 days, filled", plus a warning for a source that is flagged (its webhook
subscription is likely gone) or whose store API credentials were rejected.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

_PLURALS = {"checkout": "checkouts", "order": "orders", "refund": "refunds", "cart": "carts"}


def _things(by_kind: Counter[str]) -> str:
    parts = [
        f"{count} {kind if count == 1 else _PLURALS.get(kind, kind + 's')}"
        for kind, count in sorted(by_kind.items(), key=lambda item: (-item[1], item[0]))
        if count
    ]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def reconciliation_line(status: Mapping[str, Any], source: str | None) -> str | None:
    """One line for the health panel, or None when no source is reconciled."""
    sources: Mapping[str, Mapping[str, Any]] = status.get("sources", {})
    shown = {k: v for k, v in sources.items() if source is None or k == source}
    if not shown:
        return None
    missed: Counter[str] = Counter()
    for entry in shown.values():
        missed.update({str(k): int(v) for k, v in entry.get("missed_7d_by_kind", {}).items()})
    total = sum(missed.values())
    line = (
        f"{_things(missed)} missed by webhooks in the last 7 days, filled from the store APIs"
        if total
        else "Reconciliation with the store APIs: nothing missed by webhooks in the last 7 days"
    )
    for name, entry in sorted(shown.items()):
        if entry.get("credentials_rejected"):
            line += f" · {name}: store API credentials rejected, fix the key"
        elif entry.get("flagged"):
            line += (
                f" · {name}: webhooks missed {entry.get('missed_7d', 0)} records, "
                "its webhook subscription is likely gone"
            )
    return line
