"""Shopify GraphQL Admin API: the orders updated since a moment, with their refunds.

Request: `POST https://{shop_domain}/admin/api/{API_VERSION}/graphql.json` with
`X-Shopify-Access-Token: <api_token>` (a custom app's Admin API token with `read_orders`; without
`read_all_orders` Shopify lists only the last 60 days of orders). The `orders` query is filtered
with `updated_at:>='<ISO>'`, sorted by `UPDATED_AT` and paged with cursors (`pageInfo.hasNextPage`
and `endCursor`); an order's line items beyond the first page are fetched with the `order` query.

Throttling: every answer carries `extensions.cost` with `requestedQueryCost` and `throttleStatus`
(`currentlyAvailable`, `restoreRate` points per second). An answer whose errors have code
`THROTTLED` is retried after the time the bucket needs to refill; before the next page the
client also waits until the bucket holds the cost of the last query. `ACCESS_DENIED` is reported
as rejected credentials.

Mapping: each order is written as the REST order its `orders/updated` webhook carries (`id`,
`created_at`, `processed_at`, `updated_at`, `cancelled_at`, `test`, `cart_token`,
`checkout_token`, `currency`, `total_line_items_price_set` = the sum of the line items'
`originalTotalSet`, `total_discounts_set`) and each refund as the body of `refunds/create` (`id`,
`order_id`, `created_at`, `refund_line_items[].subtotal_set`); the Shopify adapter maps both.
Amounts are the `shopMoney` side, as the adapter reads webhooks. Abandoned checkouts are not
fetched: the GraphQL `AbandonedCheckout` has no checkout token field (only a recovery URL) to
match the checkout webhooks by (see docs/reconciliation.md).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from ingest.providers.base import Provider, UnusableDelivery, parse_time
from ingest.reconcile.http import ApiClient, ApiFailure, CredentialsRejected
from ingest.reconcile.records import FetchedRecord, Page, Pager, mapped
from ingest.sources import Source

#: The pinned GraphQL Admin API version (cartToken and checkoutToken on Order need 2026-07+).
API_VERSION = "2026-10"
ORDERS_PER_PAGE = 20
LINE_ITEMS_PER_PAGE = 25
#: Most THROTTLED answers in a row before the run gives up.
THROTTLED_MAX = 8

_MONEY = "shopMoney { amount currencyCode }"


def _line_items(arguments: str) -> str:
    return (
        f"lineItems(first: $lines{arguments}) {{ pageInfo {{ hasNextPage endCursor }} "
        f"nodes {{ originalTotalSet {{ {_MONEY} }} }} }}"
    )


ORDERS_QUERY = f"""
query ReconcileOrders($first: Int!, $after: String, $query: String!, $lines: Int!) {{
  orders(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {{
    pageInfo {{ hasNextPage endCursor }}
    nodes {{
      legacyResourceId createdAt processedAt updatedAt cancelledAt test
      cartToken checkoutToken currencyCode
      totalDiscountsSet {{ {_MONEY} }}
      {_line_items("")}
      refunds(first: 20) {{
        legacyResourceId createdAt
        refundLineItems(first: 50) {{ nodes {{ subtotalSet {{ {_MONEY} }} }} }}
      }}
    }}
  }}
}}
"""
LINE_ITEMS_QUERY = f"""
query ReconcileLineItems($id: ID!, $lines: Int!, $after: String) {{
  order(id: $id) {{ {_line_items(", after: $after")} }}
}}
"""


def _money(obj: Any, where: str) -> dict[str, Any]:
    """A REST `*_set` money object from a GraphQL MoneyBag."""
    shop = obj.get("shopMoney") if isinstance(obj, Mapping) else None
    if not isinstance(shop, Mapping):
        raise ApiFailure(f"the store API answered without {where}.shopMoney")
    value = {"amount": shop.get("amount"), "currency_code": shop.get("currencyCode")}
    return {"shop_money": value, "presentment_money": value}


class ShopifyOrders:
    def __init__(self, source: Source, provider: Provider, client: ApiClient) -> None:
        self.source = source
        self.provider = provider
        self.client = client
        self.path = f"/admin/api/{API_VERSION}/graphql.json"
        self._wait_before_next = 0.0

    def close(self) -> None:
        self.client.close()

    # ------------------------------------------------------------------ GraphQL

    def query(self, query: str, variables: Mapping[str, Any]) -> Mapping[str, Any]:
        """The `data` of a GraphQL answer, after waiting out throttling."""
        for _ in range(THROTTLED_MAX):
            if self._wait_before_next > 0:
                self.client.wait(self._wait_before_next)
                self._wait_before_next = 0.0
            response = self.client.request(
                "POST", self.path, json={"query": query, "variables": dict(variables)}
            )
            try:
                body = response.json()
            except ValueError:
                raise ApiFailure("the store API answered with invalid JSON") from None
            if not isinstance(body, Mapping):
                raise ApiFailure("the store API answered with no JSON object")
            wait = self._throttle_wait(body)
            codes = [
                str((error.get("extensions") or {}).get("code", ""))
                for error in body.get("errors") or []
                if isinstance(error, Mapping)
            ]
            if "THROTTLED" in codes:
                self._wait_before_next = max(wait, 1.0)
                continue
            if "ACCESS_DENIED" in codes:
                raise CredentialsRejected("credentials rejected: ACCESS_DENIED (needs read_orders)")
            if codes or not isinstance(body.get("data"), Mapping):
                messages = [
                    str(error.get("message", ""))[:200]
                    for error in body.get("errors") or []
                    if isinstance(error, Mapping)
                ]
                raise ApiFailure(f"the GraphQL query failed: {'; '.join(messages) or 'no data'}")
            self._wait_before_next = wait
            data: Mapping[str, Any] = body["data"]
            return data
        raise ApiFailure(f"throttled {THROTTLED_MAX} times in a row")

    @staticmethod
    def _throttle_wait(body: Mapping[str, Any]) -> float:
        """Seconds until the bucket holds the cost of the query just made (0 when it does)."""
        cost = (body.get("extensions") or {}).get("cost")
        if not isinstance(cost, Mapping):
            return 0.0
        status = cost.get("throttleStatus") or {}
        try:
            needed = float(cost.get("requestedQueryCost") or 0)
            available = float(status.get("currentlyAvailable", needed))
            rate = float(status.get("restoreRate") or 50.0)
        except (TypeError, ValueError):
            return 0.0
        return max(needed - available, 0.0) / rate if rate > 0 else 0.0

    # ------------------------------------------------------------------ listing

    def pages(self, since: datetime) -> Iterator[Page]:
        after: str | None = None
        pager = Pager("Shopify orders")
        query = f"updated_at:>='{since.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}'"
        while True:
            data = self.query(
                ORDERS_QUERY,
                {
                    "first": ORDERS_PER_PAGE,
                    "after": after,
                    "query": query,
                    "lines": LINE_ITEMS_PER_PAGE,
                },
            )
            orders = data.get("orders")
            if not isinstance(orders, Mapping):
                raise ApiFailure("the store API answered without orders")
            records: list[FetchedRecord] = []
            for node in orders.get("nodes") or []:
                records.extend(self._records(node))
            yield Page(records)
            info = orders.get("pageInfo") or {}
            after = info.get("endCursor")
            if not info.get("hasNextPage") or not after:
                return
            pager.next(after)

    def _line_items(self, order_id: str, first: Mapping[str, Any]) -> list[Any]:
        items = list(first.get("nodes") or [])
        info = first.get("pageInfo") or {}
        pager = Pager(f"Shopify order {order_id}'s line items")
        while info.get("hasNextPage") and info.get("endCursor"):
            pager.next(info["endCursor"])
            data = self.query(
                LINE_ITEMS_QUERY,
                {"id": f"gid://shopify/Order/{order_id}", "lines": 100, "after": info["endCursor"]},
            )
            page = (data.get("order") or {}).get("lineItems") or {}
            items.extend(page.get("nodes") or [])
            info = page.get("pageInfo") or {}
        return items

    def _records(self, node: Any) -> list[FetchedRecord]:
        if not isinstance(node, Mapping):
            raise ApiFailure("the store API answered with an order that is not an object")
        order_id = str(node.get("legacyResourceId", ""))
        gross = Decimal(0)
        currency = node.get("currencyCode")
        try:
            for item in self._line_items(order_id, node.get("lineItems") or {}):
                money = _money(item.get("originalTotalSet"), "originalTotalSet")["shop_money"]
                gross += Decimal(str(money["amount"]))
                currency = money["currency_code"] or currency
        except (InvalidOperation, AttributeError, TypeError):
            gross_set: dict[str, Any] | None = None
        else:
            value = {"amount": str(gross), "currency_code": currency}
            gross_set = {"shop_money": value, "presentment_money": value}
        payload = {
            "id": order_id,
            "created_at": node.get("createdAt"),
            "processed_at": node.get("processedAt"),
            "updated_at": node.get("updatedAt"),
            "cancelled_at": node.get("cancelledAt"),
            "test": node.get("test", False),
            "cart_token": node.get("cartToken"),
            "checkout_token": node.get("checkoutToken"),
            "currency": currency,
            "total_line_items_price_set": gross_set,
            "total_discounts_set": _money(node.get("totalDiscountsSet"), "totalDiscountsSet"),
        }
        topic = "orders/updated"
        records = [
            mapped(
                self.provider,
                topic,
                order_id,
                _time(node, "updatedAt"),
                payload,
                {"x-shopify-topic": topic},
            )
        ]
        for refund in node.get("refunds") or []:
            records.append(self._refund(order_id, refund))
        return records

    def _refund(self, order_id: str, refund: Any) -> FetchedRecord:
        if not isinstance(refund, Mapping):
            raise ApiFailure("the store API answered with a refund that is not an object")
        lines = (refund.get("refundLineItems") or {}).get("nodes") or []
        refund_id = str(refund.get("legacyResourceId", ""))
        payload = {
            "id": refund_id,
            "order_id": order_id,
            "created_at": refund.get("createdAt"),
            "refund_line_items": [
                {"subtotal_set": _money(line.get("subtotalSet"), "subtotalSet")} for line in lines
            ],
        }
        topic = "refunds/create"
        return mapped(
            self.provider,
            topic,
            refund_id,
            _time(refund, "createdAt"),
            payload,
            {"x-shopify-topic": topic},
        )


def _time(node: Mapping[str, Any], name: str) -> datetime | None:
    try:
        return parse_time(node, name, required=False)
    except UnusableDelivery:
        return None
