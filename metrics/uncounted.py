"""Stored orders the figures leave out, per source: test, cancelled and deleted orders.

A store owner who sends Shopify's sample order (a test order, and cancelled) sees 0 orders; this
count says the delivery arrived and why it does not count. Read from the entity state (which
lags the figures by at most `metrics_state_write_seconds`), at most once per `ttl` seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import duckdb

from metrics.schema import ORDERS

REASONS = ("test", "cancelled", "deleted")

_QUERY = f"""
SELECT source,
       count(*) FILTER (coalesce(test, false) OR coalesce(cancelled, false) OR deleted),
       count(*) FILTER (coalesce(test, false)),
       count(*) FILTER (coalesce(cancelled, false)),
       count(*) FILTER (deleted)
FROM {ORDERS}
WHERE coalesce(test, false) OR coalesce(cancelled, false) OR deleted
GROUP BY source
"""


class UncountedOrders:
    """Per source: `orders` stored but not counted, and how many of them are test, cancelled or
    deleted (an order can be several: Shopify's sample order is test and cancelled)."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        *,
        ttl: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.con = con
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._read_at: float | None = None
        self._counts: dict[str, dict[str, int]] = {}

    def __call__(self) -> dict[str, dict[str, int]]:
        with self._lock:
            now = self.clock()
            if self._read_at is None or now - self._read_at >= self.ttl:
                self._counts = self._read()
                self._read_at = now
            return {source: dict(counts) for source, counts in self._counts.items()}

    def _read(self) -> dict[str, dict[str, int]]:
        try:
            rows = self.con.cursor().execute(_QUERY).fetchall()
        except duckdb.CatalogException:  # no metrics state yet
            return {}
        return {
            str(source): dict(zip(("orders", *REASONS), map(int, counts), strict=True))
            for source, *counts in rows
        }
