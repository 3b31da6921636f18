"""WooCommerce REST API (wc/v3): the orders modified since a moment.

Request: `GET {api_base_url}/wp-json/wc/v3/orders?modified_after=<ISO>&dates_are_gmt=true
&orderby=modified&order=asc&per_page=100&page=<n>` with HTTP Basic auth (consumer key and
secret; WooCommerce accepts it over HTTPS). Pages are numbered from 1; the `X-WP-TotalPages`
header says how many there are (`X-WP-Total`: how many orders), and an empty page ends the
listing too.

An order of the REST API is exactly the body of a WooCommerce order webhook, so each one is
mapped by the WooCommerce adapter as topic `order.updated` (its refunds included).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from ingest.providers.base import Provider, UnusableDelivery
from ingest.providers.woocommerce import TOPIC_HEADER, parse_gmt
from ingest.reconcile.http import ApiClient, ApiFailure
from ingest.reconcile.records import FetchedRecord, Page, Pager, mapped
from ingest.sources import Source

PER_PAGE = 100
TOPIC = "order.updated"


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name, "").strip()
    return int(value) if value.isdigit() else None


class WooCommerceOrders:
    def __init__(self, source: Source, provider: Provider, client: ApiClient) -> None:
        self.source = source
        self.provider = provider
        self.client = client

    def close(self) -> None:
        self.client.close()

    def pages(self, since: datetime) -> Iterator[Page]:
        page = 1
        pager = Pager("WooCommerce orders")
        while True:
            response = self.client.request(
                "GET",
                "/wp-json/wc/v3/orders",
                params={
                    "modified_after": since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                    "dates_are_gmt": "true",
                    "orderby": "modified",
                    "order": "asc",
                    "per_page": PER_PAGE,
                    "page": page,
                },
            )
            try:
                orders = response.json()
            except ValueError:
                raise ApiFailure("the store API answered with invalid JSON") from None
            if not isinstance(orders, list):
                raise ApiFailure("the store API answered with no list of orders")
            pages = _int_header(response.headers, "x-wp-totalpages")
            yield Page(
                [self._record(order) for order in orders],
                _int_header(response.headers, "x-wp-total"),
            )
            if not orders or (pages is not None and page >= pages):
                return
            page += 1
            pager.next(page)

    def _record(self, order: Any) -> FetchedRecord:
        if not isinstance(order, Mapping):
            order = {"value": order}
        try:
            version = parse_gmt(order, "date_modified_gmt", required=False)
        except UnusableDelivery:
            version = None
        entity = str(order.get("id", ""))[:128]
        return mapped(self.provider, TOPIC, entity, version, order, {TOPIC_HEADER: TOPIC})
