"""Stand-ins for the store APIs reconciliation reads, on 127.0.0.1, in the documented shapes.

One server answers all four platforms' listings from what it is given (the store's truth):

- Shopify GraphQL Admin API: `POST /admin/api/<version>/graphql.json` answering the `orders`
  query (filter `updated_at:>='...'`, cursor pagination with `pageInfo`, line items paged per
  order and their next pages through the `order` query) with `extensions.cost.throttleStatus`;
  `throttled` scripts THROTTLED answers.
- WooCommerce `GET /wp-json/wc/v3/orders` (`modified_after`, `page`, `per_page`, headers
  `X-WP-Total` and `X-WP-TotalPages`), HTTP Basic auth.
- BigCommerce `GET /stores/<hash>/v2/orders` (`min_date_modified`, `page`, `limit`; 204 for an
  empty page) and `GET /stores/<hash>/v2/orders/<id>` (for order enrichment).
- Stripe `GET /v1/checkout/sessions` and `/v1/refunds` (`created[gte]`, `limit`,
  `starting_after`, `has_more`; newest first, as Stripe lists).

`faults` are answered first, one per request (status, headers, body), whatever was asked: 429
with Retry-After, 5xx, 401; `delays` hold requests back (for timeouts). Wrong credentials get
401. Every request is recorded.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

SHOPIFY_TOKEN = "shpat_test_token"
WOO_KEY, WOO_SECRET = "ck_test_key", "cs_test_secret"
BC_HASH, BC_TOKEN = "abc123", "bc-api-token"
STRIPE_KEY = "rk_live_test_key"

Reply = tuple[int, dict[str, str], Any]


def _iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


class StoreApi:
    def __init__(self) -> None:
        self.shopify_orders: list[dict[str, Any]] = []  # GraphQL Order nodes (all line items)
        self.woo_orders: list[dict[str, Any]] = []  # wc/v3 orders
        self.bc_orders: list[dict[str, Any]] = []  # V2 orders
        self.stripe_sessions: list[dict[str, Any]] = []
        self.stripe_refunds: list[dict[str, Any]] = []
        self.faults: list[Reply] = []
        self.delays: list[float] = []  # seconds to wait before answering, one per request
        self.throttled = 0  # THROTTLED answers to give before answering
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer(stand_in.answer("GET", self.path, dict(self.headers), b""))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                self._answer(stand_in.answer("POST", self.path, dict(self.headers), body))

            def _answer(self, reply: Reply) -> None:
                status, headers, body = reply
                payload = b"" if body is None else json.dumps(body).encode()
                try:
                    self.send_response(status)
                    for name, value in {"Content-Type": "application/json", **headers}.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (a timeout test)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # ------------------------------------------------------------------ dispatch

    def answer(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Reply:
        url = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        with self.lock:
            self.requests.append((method, target))
            delay = self.delays.pop(0) if self.delays else 0.0
        time.sleep(delay)
        with self.lock:
            if self.faults:
                return self.faults.pop(0)
        lower = {k.lower(): v for k, v in headers.items()}
        if url.path.endswith("/graphql.json") and method == "POST":
            if lower.get("x-shopify-access-token") != SHOPIFY_TOKEN:
                return 401, {}, {"errors": "[API] Invalid API key or access token"}
            return self.shopify(json.loads(body))
        if url.path == "/wp-json/wc/v3/orders":
            expected = base64.b64encode(f"{WOO_KEY}:{WOO_SECRET}".encode()).decode()
            if lower.get("authorization") != f"Basic {expected}":
                return 401, {}, {"code": "woocommerce_rest_cannot_view", "data": {"status": 401}}
            return self.woo(query)
        if url.path.startswith(f"/stores/{BC_HASH}/v2/orders"):
            if lower.get("x-auth-token") != BC_TOKEN:
                return 401, {}, [{"status": 401, "message": "You are not authorized."}]
            return self.bigcommerce(url.path, query)
        if url.path in ("/v1/checkout/sessions", "/v1/refunds"):
            if lower.get("authorization") != f"Bearer {STRIPE_KEY}":
                return 401, {}, {"error": {"type": "invalid_request_error"}}
            objects = self.stripe_sessions if "sessions" in url.path else self.stripe_refunds
            return self.stripe(objects, query)
        return 404, {}, {"error": "not found"}

    # ------------------------------------------------------------------ Shopify

    def _cost(self, available: float) -> dict[str, Any]:
        return {
            "cost": {
                "requestedQueryCost": 100,
                "actualQueryCost": 40,
                "throttleStatus": {
                    "maximumAvailable": 2000.0,
                    "currentlyAvailable": available,
                    "restoreRate": 1000.0,
                },
            }
        }

    def shopify(self, request: dict[str, Any]) -> Reply:
        with self.lock:
            if self.throttled > 0:
                self.throttled -= 1
                errors = [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]
                return 200, {}, {"errors": errors, "extensions": self._cost(20.0)}
        variables = request["variables"]
        if "order(id:" in request["query"]:
            order_id = variables["id"].rsplit("/", 1)[-1]
            node = next(n for n in self.shopify_orders if n["legacyResourceId"] == order_id)
            lines = self._lines(node, variables["lines"], variables.get("after"))
            return (
                200,
                {},
                {"data": {"order": {"lineItems": lines}}, "extensions": self._cost(1900)},
            )
        since = _iso(variables["query"].split(">=", 1)[1].strip("'"))
        nodes = sorted(
            (n for n in self.shopify_orders if _iso(n["updatedAt"]) >= since),
            key=lambda n: (n["updatedAt"], n["legacyResourceId"]),
        )
        start = int(variables["after"]) if variables.get("after") else 0
        page = nodes[start : start + variables["first"]]
        answered = []
        for node in page:
            answered_node = {k: v for k, v in node.items() if k != "lineItems"}
            answered_node["lineItems"] = self._lines(node, variables["lines"], None)
            answered.append(answered_node)
        end = start + len(page)
        orders = {
            "pageInfo": {"hasNextPage": end < len(nodes), "endCursor": str(end) if page else None},
            "nodes": answered,
        }
        return 200, {}, {"data": {"orders": orders}, "extensions": self._cost(1900)}

    @staticmethod
    def _lines(node: dict[str, Any], first: int, after: str | None) -> dict[str, Any]:
        items = node["lineItems"]
        start = int(after) if after else 0
        end = start + first
        return {
            "pageInfo": {"hasNextPage": end < len(items), "endCursor": str(min(end, len(items)))},
            "nodes": items[start:end],
        }

    # ------------------------------------------------------------------ WooCommerce

    def woo(self, query: dict[str, str]) -> Reply:
        since = datetime.fromisoformat(query["modified_after"]).replace(tzinfo=UTC)
        orders = sorted(
            (
                o
                for o in self.woo_orders
                if datetime.fromisoformat(o["date_modified_gmt"]).replace(tzinfo=UTC) >= since
            ),
            key=lambda o: (o["date_modified_gmt"], o["id"]),
        )
        per_page, page = int(query.get("per_page", 10)), int(query.get("page", 1))
        pages = max((len(orders) + per_page - 1) // per_page, 1) if orders else 0
        chunk = orders[(page - 1) * per_page : page * per_page]
        return 200, {"X-WP-Total": str(len(orders)), "X-WP-TotalPages": str(pages)}, chunk

    # ------------------------------------------------------------------ BigCommerce

    def bigcommerce(self, path: str, query: dict[str, str]) -> Reply:
        tail = path.rsplit("/", 1)[-1]
        if tail.isdigit():
            order = next((o for o in self.bc_orders if str(o["id"]) == tail), None)
            return (200, {}, order) if order is not None else (404, {}, None)
        since = parsedate_to_datetime(query["min_date_modified"])
        orders = sorted(
            (o for o in self.bc_orders if parsedate_to_datetime(o["date_modified"]) >= since),
            key=lambda o: (parsedate_to_datetime(o["date_modified"]), o["id"]),
        )
        limit, page = int(query.get("limit", 50)), int(query.get("page", 1))
        chunk = orders[(page - 1) * limit : page * limit]
        return (200, {}, chunk) if chunk else (204, {}, None)

    # ------------------------------------------------------------------ Stripe

    @staticmethod
    def stripe(objects: list[dict[str, Any]], query: dict[str, str]) -> Reply:
        since = int(query.get("created[gte]", 0))
        listed = sorted(
            (o for o in objects if o["created"] >= since),
            key=lambda o: (o["created"], o["id"]),
            reverse=True,
        )
        after = query.get("starting_after")
        if after is not None:
            ids = [o["id"] for o in listed]
            listed = listed[ids.index(after) + 1 :]
        limit = int(query.get("limit", 10))
        return 200, {}, {"object": "list", "data": listed[:limit], "has_more": len(listed) > limit}


@contextmanager
def running_store_api() -> Iterator[StoreApi]:
    api = StoreApi()
    api.thread.start()
    try:
        yield api
    finally:
        api.server.shutdown()
        api.server.server_close()
