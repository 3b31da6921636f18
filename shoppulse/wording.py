"""Counted nouns in what the CLI prints: "1 quarantined delivery", "2 quarantined deliveries"."""

from __future__ import annotations


def counted(count: int, singular: str, plural: str | None = None) -> str:
    """`count` and the noun in the number it takes (`plural` defaults to `singular` + "s")."""
    noun = singular if count == 1 else (plural if plural is not None else f"{singular}s")
    return f"{count:,d} {noun}"
