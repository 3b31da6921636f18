"""Store platform adapters, one module each, listed in one registry."""

from __future__ import annotations

from collections.abc import Callable

from ingest.providers.base import Provider
from ingest.providers.bigcommerce import BigCommerce
from ingest.providers.shopify import Shopify
from ingest.providers.standard import StandardWebhooks
from ingest.providers.stripe import Stripe
from ingest.providers.woocommerce import WooCommerce
from ingest.settings import IngestSettings as Settings

PROVIDERS: dict[str, Provider] = {
    Shopify.name: Shopify(),
    WooCommerce.name: WooCommerce(),
    BigCommerce.name: BigCommerce(),
    Stripe.name: Stripe(),
    StandardWebhooks.name: StandardWebhooks(),
}
"""Every provider with default settings (enough for `sign` and for validating source files)."""

#: Providers that take settings (the signed-timestamp tolerance) are built from them.
_CONFIGURED: dict[str, Callable[[Settings], Provider]] = {
    BigCommerce.name: lambda s: BigCommerce(tolerance_seconds=s.signature_tolerance_seconds),
    Stripe.name: lambda s: Stripe(tolerance_seconds=s.signature_tolerance_seconds),
    StandardWebhooks.name: lambda s: StandardWebhooks(
        tolerance_seconds=s.signature_tolerance_seconds
    ),
}


def get_provider(name: str, settings: Settings | None = None) -> Provider:
    """The provider called `name`, configured from `settings` when given."""
    try:
        provider = PROVIDERS[name]
    except KeyError:
        known = ", ".join(sorted(PROVIDERS))
        raise ValueError(f"unknown provider '{name}' (known: {known})") from None
    if settings is not None and name in _CONFIGURED:
        return _CONFIGURED[name](settings)
    return provider
