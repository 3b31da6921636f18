"""A stand-in for BigCommerce's store API (V2 Orders) on 127.0.0.1, for enrichment tests.

It answers `GET /stores/<hash>/v2/orders/<id>` with the documented V2 order shape, or with
scripted failures, `GET .../orders/<id>/products` with the scripted products (404 when none are
scripted), and records every request.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

STORE_HASH = "abc123"
TOKEN = "api-token-for-tests"

Reply = tuple[int, Any, dict[str, str]]


def v2_order(
    order_id: int,
    *,
    created: datetime,
    modified: datetime,
    subtotal: Any = "225.0000",
    discount: Any = "10.0000",
    coupon: Any = "5.0000",
    status_id: int = 11,
    currency: str = "EUR",
) -> dict[str, Any]:
    """A V2 order as the API documents it (fields ShopPulse ignores included)."""
    return {
        "id": order_id,
        "customer_id": 11,
        "date_created": format_datetime(created),
        "date_modified": format_datetime(modified),
        "date_shipped": "",
        "status_id": status_id,
        "status": "Awaiting Fulfillment",
        "subtotal_ex_tax": subtotal,
        "subtotal_inc_tax": "247.5000",
        "subtotal_tax": "22.5000",
        "base_shipping_cost": "12.0000",
        "shipping_cost_ex_tax": "12.0000",
        "total_ex_tax": "222.0000",
        "total_inc_tax": "244.2000",
        "total_tax": "22.2000",
        "items_total": 3,
        "discount_amount": discount,
        "coupon_discount": coupon,
        "currency_id": 2,
        "currency_code": "USD",
        "currency_exchange_rate": "1.0000000000",
        "default_currency_id": 2,
        "default_currency_code": currency,
        "is_deleted": False,
        "cart_id": "d30016e2-23c0-4a90-884f-2e92ac135476" if order_id == 252 else None,
        "billing_address": {"first_name": "Jane", "email": "janedoe@example.com"},
        "products": {"url": "https://api.example/v2/orders/250/products"},
    }


def v2_product(
    product_id: int,
    *,
    quantity: int = 1,
    price: str = "75.0000",
    discounts: tuple[str, ...] = (),
    sku: str = "",
    name: str = "Orbit Terrarium",
) -> dict[str, Any]:
    """An order product as "List Order Products" documents it (extra fields included)."""
    return {
        "id": 100 + product_id,
        "order_id": 250,
        "product_id": product_id,
        "variant_id": 1000 + product_id,
        "name": name,
        "sku": sku,
        "type": "physical",
        "base_price": price,
        "price_ex_tax": price,
        "price_inc_tax": str(Decimal(price) * Decimal("1.1")),
        "base_total": str(Decimal(price) * quantity),
        "total_ex_tax": str(Decimal(price) * quantity),
        "quantity": quantity,
        "applied_discounts": [
            {"id": "coupon", "amount": amount, "name": "SPRING", "code": "SPRING"}
            for amount in discounts
        ],
    }


class StandIn:
    """The store API: scripted replies per order id (the last one repeats); records requests."""

    def __init__(self) -> None:
        self.replies: dict[str, list[Reply]] = {}
        #: Per order id: the products, answered in pages of the requested `limit`.
        self.products: dict[str, list[dict[str, Any]]] = {}
        self.requests: list[tuple[float, str, dict[str, str]]] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stand_in.requests.append((time.monotonic(), self.path, dict(self.headers)))
                products = re.fullmatch(
                    rf"/stores/{STORE_HASH}/v2/orders/(\d+)/products\?limit=(\d+)&page=(\d+)",
                    self.path,
                )
                if products:
                    self._products(*products.groups())
                    return
                match = re.fullmatch(rf"/stores/{STORE_HASH}/v2/orders/(\d+)", self.path)
                scripted = stand_in.replies.get(match.group(1), []) if match else []
                status, body, headers = (
                    scripted.pop(0) if len(scripted) > 1 else (scripted or [(404, None, {})])[0]
                )
                payload = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _products(self, order_id: str, limit: str, page: str) -> None:
                listed = stand_in.products.get(order_id)
                start = (int(page) - 1) * int(limit)
                chunk = None if listed is None else listed[start : start + int(limit)]
                status = 404 if chunk is None else 200 if chunk else 204
                payload = json.dumps(chunk).encode() if chunk else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def order_requests(self, order_id: int) -> list[float]:
        return [t for t, path, _ in self.requests if path.endswith(f"/orders/{order_id}")]


@contextmanager
def running_stand_in() -> Iterator[StandIn]:
    server = StandIn()
    server.thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()
