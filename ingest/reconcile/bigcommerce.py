"""BigCommerce V2 Orders API: the orders modified since a moment.

Request: `GET {api_base_url}/stores/{store_hash}/v2/orders?min_date_modified=<RFC 2822>
&sort=date_modified:asc&limit=250&page=<n>` with `X-Auth-Token: <api_token>`. Pages are numbered
from 1; a page shorter than the limit, or `204 No Content` (V2's answer for an empty page), ends
the listing.

BigCommerce order webhooks carry only ids, so there is no webhook body to map: each order becomes
the same canonical order event as order enrichment makes from one order (ingest/bigcommerce_api.py,
`order_event`). Refund amounts are not fetched (as with enrichment).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from typing import Any

import orjson

from ingest.bigcommerce_api import FetchFailed, order_event, rfc2822_field
from ingest.reconcile.http import ApiClient, ApiFailure
from ingest.reconcile.records import FetchedRecord, Page, Pager
from ingest.sources import Source

PER_PAGE = 250
#: BigCommerce dates a webhook by its dispatch, seconds after the change (ingest/enrichment.py,
#: "Version"): a stored version up to this much later than `date_modified` is the same one.
DISPATCH_LAG = timedelta(minutes=5)
TOPIC = "store/order/updated"


def _version(order: Mapping[str, Any]) -> datetime | None:
    try:
        return rfc2822_field(order, "date_modified")
    except FetchFailed:
        return None


class BigCommerceOrders:
    def __init__(self, source: Source, client: ApiClient) -> None:
        self.source = source
        self.client = client

    def close(self) -> None:
        self.client.close()

    def pages(self, since: datetime) -> Iterator[Page]:
        page = 1
        pager = Pager("BigCommerce orders")
        while True:
            response = self.client.request(
                "GET",
                f"/stores/{self.source.store_hash}/v2/orders",
                params={
                    "min_date_modified": format_datetime(since.astimezone(UTC), usegmt=True),
                    "sort": "date_modified:asc",
                    "limit": PER_PAGE,
                    "page": page,
                },
            )
            if response.status_code == 204 or not response.content:
                return
            try:
                orders = json.loads(response.content, parse_float=Decimal)
            except ValueError:
                raise ApiFailure("the store API answered with invalid JSON") from None
            if not isinstance(orders, list):
                raise ApiFailure("the store API answered with no list of orders")
            yield Page([self._record(order) for order in orders])
            if len(orders) < PER_PAGE:
                return
            page += 1
            pager.next(page)

    @staticmethod
    def _record(order: Any) -> FetchedRecord:
        if not isinstance(order, Mapping):
            order = {"value": order}
        order_id = str(order.get("id", ""))[:128]
        body = orjson.dumps(order, default=str)
        version = _version(order)
        try:
            event = order_event(order, order_id, not_before=None)
        except FetchFailed as exc:
            return FetchedRecord(TOPIC, order_id, version, body, reason=str(exc)[:300])
        return FetchedRecord(
            TOPIC, order_id, version, body, events=(event,), dispatch_lag=DISPATCH_LAG
        )
