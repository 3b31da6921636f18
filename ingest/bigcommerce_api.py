"""BigCommerce's store API (V2 Orders): one order, read into a canonical order event.

Request: `GET {api_base_url}/stores/{store_hash}/v2/orders/{id}` with `X-Auth-Token: <api_token>`
and `Accept: application/json` (BigCommerce API reference, Orders V2, "Get an Order").

Fields used from the documented V2 order response (nothing else of it is read or stored):

- `id` (integer): checked against the requested order id.
- `date_created` (RFC 2822 date, UTC): `created_at`.
- `date_modified` (RFC 2822 date, UTC): `updated_at`, raised to `not_before` when that is later
  (see ingest/enrichment.py, "Version").
- `status_id` (integer): `cancelled` for 0 Incomplete, 5 Cancelled and 6 Declined, as the
  adapter does for `store/order/statusUpdated`.
- `is_deleted` (boolean): `deleted` (an archived order does not count).
- `subtotal_ex_tax` (decimal string): `gross_sales`, the line items before discounts, no tax.
- `discount_amount` and `coupon_discount` (decimal strings): their sum is `discounts`.
- `default_currency_code` (ISO 4217): `currency`, the transactional currency the amounts are in;
  when absent, `currency_code` (the display currency, which V2 orders set to the transactional
  one). With multi-currency the amounts stay in the currency the shopper paid in.
- `cart_id` (string): `cart_token` (the order converts its cart).

The order's products (the line items): `GET .../v2/orders/{id}/products?limit=250&page=N`
("List Order Products"), page by page until a short page (204: none). Fields used per product:
`product_id`, `variant_id`, `sku`, `name` (the title), `quantity`, `price_ex_tax` (the unit
price before discounts, without tax; their sum times quantity is `subtotal_ex_tax`) and
`applied_discounts[].amount` (the line's discounts). A products answer that cannot be read
leaves the order's lines unknown; its amounts are stored all the same.

Amounts are read as exact decimals, JSON numbers included.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from ingest.events import CanonicalEvent, OrderLine
from ingest.providers.base import (
    UnusableDelivery,
    build_event,
    build_lines,
    get_id,
    optional_text,
    parse_money,
)
from ingest.providers.bigcommerce import NOT_COUNTED_STATUSES
from ingest.sources import Source

#: Products asked for per page (the API's maximum), and the most pages read for one order.
PRODUCTS_PER_PAGE = 250
MAX_PRODUCT_PAGES = 40


class FetchFailed(Exception):
    """The order could not be fetched: retry later (`transient`) or give up."""

    def __init__(self, message: str, *, transient: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.retry_after = retry_after


# ----------------------------------------------------------------------------- the store API


def _retry_after(response: httpx.Response) -> float | None:
    reset_ms = response.headers.get("x-rate-limit-time-reset-ms", "").strip()
    if reset_ms.isdigit():
        return int(reset_ms) / 1000
    after = response.headers.get("retry-after", "").strip()
    return float(after) if after.isdigit() else None


class OrdersApi:
    """The V2 Orders API of one BigCommerce store (one source)."""

    def __init__(self, source: Source, *, timeout: float = 10.0) -> None:
        if source.store_hash is None or source.api_token is None:
            raise ValueError(f"source '{source.id}' has no store API credentials")
        self.source = source.id
        self._client = httpx.Client(
            base_url=f"{source.api_url}/stores/{source.store_hash}/v2",
            headers={
                "X-Auth-Token": source.api_token.get_secret_value(),
                "Accept": "application/json",
            },
            timeout=timeout,
            follow_redirects=False,
        )

    def close(self) -> None:
        self._client.close()

    def order(self, order_id: str) -> Mapping[str, Any]:
        """The order as the API returns it; FetchFailed says whether to retry."""
        body = self._get(order_id, f"/orders/{order_id}")
        if not isinstance(body, Mapping):
            raise FetchFailed("the store API answered with no order object", transient=False)
        return body

    def products(self, order_id: str) -> list[Mapping[str, Any]]:
        """The order's products, every page; FetchFailed says whether to retry."""
        products: list[Mapping[str, Any]] = []
        for page in range(1, MAX_PRODUCT_PAGES + 1):
            body = self._get(
                order_id,
                f"/orders/{order_id}/products",
                {"limit": PRODUCTS_PER_PAGE, "page": page},
            )
            if body is None:  # 204: no (more) products
                return products
            if not isinstance(body, list) or not all(isinstance(p, Mapping) for p in body):
                raise FetchFailed("the store API answered with no product list", transient=False)
            products += body
            if len(body) < PRODUCTS_PER_PAGE:
                return products
        raise FetchFailed(f"order {order_id} has too many products", transient=False)

    def _get(self, order_id: str, path: str, params: Mapping[str, int] | None = None) -> Any:
        """The JSON answer to GET `path` (None for 204 No Content)."""
        if not order_id.isdigit():
            raise FetchFailed(f"'{order_id[:64]}' is not a BigCommerce order id", transient=False)
        try:
            response = self._client.get(path, params=params)
        except httpx.TimeoutException:
            raise FetchFailed("the store API did not answer in time", transient=True) from None
        except httpx.TransportError as exc:
            raise FetchFailed(f"cannot reach the store API: {exc}", transient=True) from None
        status = response.status_code
        if status == 204:
            return None
        if status == 200:
            try:
                # Exact decimals, also for amounts sent as JSON numbers.
                return json.loads(response.content, parse_float=Decimal)
            except ValueError:
                raise FetchFailed(
                    "the store API answered with invalid JSON", transient=False
                ) from None
        if status == 429 or status >= 500:
            raise FetchFailed(
                f"the store API answered {status}",
                transient=True,
                retry_after=_retry_after(response),
            )
        if status == 404:
            raise FetchFailed(f"order {order_id} does not exist (404)", transient=False)
        if status in (401, 403):
            raise FetchFailed(
                f"the store API refused the api_token ({status}); it needs the Orders read scope",
                transient=False,
            )
        raise FetchFailed(f"the store API answered {status}", transient=False)


def rfc2822_field(order: Mapping[str, Any], name: str) -> datetime:
    value = order.get(name)
    if not isinstance(value, str) or not value.strip():
        raise FetchFailed(f"the order has no '{name}'", transient=False)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        raise FetchFailed(
            f"'{name}' is not an RFC 2822 date: {value[:40]!r}", transient=False
        ) from None
    if moment.tzinfo is None:  # "-0000": UTC, as the API documents its dates
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _amount(order: Mapping[str, Any], name: str, *, required: bool) -> Decimal:
    value = order.get(name)
    if value is None or value == "":
        if required:
            raise FetchFailed(f"the order has no '{name}'", transient=False)
        return Decimal(0)
    try:
        return parse_money(str(value) if isinstance(value, Decimal) else value, name)
    except UnusableDelivery as exc:
        raise FetchFailed(str(exc), transient=False) from None


def order_lines(products: Sequence[Mapping[str, Any]] | None) -> tuple[OrderLine, ...] | None:
    """The order's products as canonical lines (None: not known, or unusable)."""
    if products is None:
        return None
    lines = []
    try:
        for product in products:
            discounts = product.get("applied_discounts") or []
            if not isinstance(discounts, list):
                return None
            lines.append(
                {
                    "product_id": get_id(product, "product_id", required=False),
                    "variant_id": get_id(product, "variant_id", required=False),
                    "sku": optional_text(product.get("sku")),
                    "title": optional_text(product.get("name")),
                    "quantity": product.get("quantity"),
                    "unit_price": _amount(product, "price_ex_tax", required=True),
                    "discount": sum(
                        (
                            _amount(d, "amount", required=False)
                            for d in discounts
                            if isinstance(d, Mapping)
                        ),
                        Decimal(0),
                    ),
                }
            )
    except (FetchFailed, UnusableDelivery):
        return None
    return build_lines(lines)


def order_event(
    order: Mapping[str, Any],
    order_id: str,
    *,
    not_before: datetime | None,
    products: Sequence[Mapping[str, Any]] | None = None,
) -> CanonicalEvent:
    """The canonical order event for a V2 order response (see the module docstring)."""
    if str(order.get("id")) != order_id:
        raise FetchFailed(f"the store API answered with order {order.get('id')!r}", transient=False)
    status = order.get("status_id")
    if isinstance(status, bool) or not isinstance(status, int):
        raise FetchFailed("the order's 'status_id' is not an integer", transient=False)
    currency = order.get("default_currency_code") or order.get("currency_code")
    if not isinstance(currency, str):
        raise FetchFailed("the order has no currency code", transient=False)
    cart = order.get("cart_id")
    modified = rfc2822_field(order, "date_modified")
    cancelled = status in NOT_COUNTED_STATUSES
    try:
        return build_event(
            kind="order",
            action="cancel" if status in (5, 6) else "update",
            entity_id=order_id,
            created_at=rfc2822_field(order, "date_created"),
            updated_at=max(modified, not_before) if not_before is not None else modified,
            cart_token=cart if isinstance(cart, str) and cart else None,
            order_id=order_id,
            currency=currency.upper(),
            gross_sales=_amount(order, "subtotal_ex_tax", required=True),
            discounts=_amount(order, "discount_amount", required=False)
            + _amount(order, "coupon_discount", required=False),
            name=f"#{order_id}",
            lines=order_lines(products),
            cancelled=cancelled,
            deleted=order.get("is_deleted") is True,
        )
    except UnusableDelivery as exc:
        raise FetchFailed(str(exc), transient=False) from None
