"""The store API fetcher of a source, by provider, with its credentials (never logged)."""

from __future__ import annotations

import threading

import httpx

from ingest.providers import get_provider
from ingest.reconcile.bigcommerce import BigCommerceOrders
from ingest.reconcile.http import ApiClient
from ingest.reconcile.records import Fetcher
from ingest.reconcile.shopify import ShopifyOrders
from ingest.reconcile.stripe import StripeCheckout
from ingest.reconcile.woocommerce import WooCommerceOrders
from ingest.settings import IngestSettings
from ingest.sources import Source


def _secret(value: object) -> str:
    getter = getattr(value, "get_secret_value", None)
    return str(getter()) if getter is not None else ""


def make_fetcher(
    source: Source,
    settings: IngestSettings,
    *,
    stop: threading.Event | None = None,
    backoff_base: float = 1.0,
    timeout: float = 20.0,
) -> Fetcher:
    """The fetcher of `source`; ValueError when the source has no store API credentials."""
    url = source.api_url
    if not source.has_api_credentials or url is None:
        raise ValueError(
            f"source '{source.id}' has no store API credentials (see docs/reconciliation.md)"
        )
    provider = get_provider(source.provider, settings)

    def client(headers: dict[str, str] | None = None, auth: httpx.Auth | None = None) -> ApiClient:
        assert url is not None
        return ApiClient(
            url, headers=headers, auth=auth, timeout=timeout, backoff_base=backoff_base, stop=stop
        )

    if source.provider == "shopify":
        token = {"X-Shopify-Access-Token": _secret(source.api_token)}
        return ShopifyOrders(source, provider, client(token))
    if source.provider == "woocommerce":
        auth = httpx.BasicAuth(_secret(source.consumer_key), _secret(source.consumer_secret))
        return WooCommerceOrders(source, provider, client(auth=auth))
    if source.provider == "bigcommerce":
        return BigCommerceOrders(source, client({"X-Auth-Token": _secret(source.api_token)}))
    if source.provider == "stripe":
        key = {"Authorization": f"Bearer {_secret(source.api_key)}"}
        return StripeCheckout(source, provider, client(key))
    raise ValueError(f"{source.provider} sources have no store API to reconcile with")
