"""Store platform adapters, one module each, listed in one registry."""

from __future__ import annotations

from ingest.providers.base import Provider
from ingest.providers.shopify import Shopify

PROVIDERS: dict[str, Provider] = {
    Shopify.name: Shopify(),
}


def get_provider(name: str) -> Provider:
    try:
        return PROVIDERS[name]
    except KeyError:
        known = ", ".join(sorted(PROVIDERS))
        raise ValueError(f"unknown provider '{name}' (known: {known})") from None
