"""The quarantine: the advice given with each reason (for every adapter's way of wording it)
and the queries that list it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from ingest.providers import get_provider
from ingest.providers.base import UnusableDelivery
from ingest.quarantine import (
    CANNOT_REPLAY,
    CHECK_CLOCKS,
    FIX_MAPPING,
    NOT_JSON,
    UNSUBSCRIBE,
    QuarantineFilter,
    count_quarantined,
    next_step,
    recent_quarantine,
)
from ingest.storage.writer import Delivery, Outcome, Writer
from shoppulse.database import open_database


@pytest.mark.parametrize(
    ("provider", "topic"),
    [
        ("shopify", "products/update"),
        ("woocommerce", "coupon.created"),
        ("bigcommerce", "store/product/updated"),
        ("stripe", "invoice.paid"),
    ],
)
def test_an_unknown_topic_says_unsubscribe(provider: str, topic: str) -> None:
    with pytest.raises(UnusableDelivery) as caught:
        get_provider(provider).normalize(topic, {"id": 1}, {})
    assert next_step(str(caught.value)) == UNSUBSCRIBE
    assert "unsubscribe" in UNSUBSCRIBE and "mapping" not in UNSUBSCRIBE


@pytest.mark.parametrize(
    ("reason", "advice"),
    [
        ("invalid JSON: unexpected character", NOT_JSON),
        (
            "event time 2099-01-01T00:00:00+00:00 (created_at of order '1') is more than 1 day "
            "in the future (service clock 2026-01-01T00:00:00+00:00)",
            CHECK_CLOCKS,
        ),
        ("the raw body was not kept, so the delivery cannot be replayed", CANNOT_REPLAY),
        ("field 'total_line_items_price' is missing", FIX_MAPPING),
        (None, FIX_MAPPING),
    ],
)
def test_other_reasons(reason: str | None, advice: str) -> None:
    assert next_step(reason) == advice


def _store(con: duckdb.DuckDBPyConnection, deliveries: list[Delivery]) -> None:
    writer = Writer(con)
    writer.start()
    try:

        async def submit_all() -> list[Outcome]:
            return list(await asyncio.gather(*(writer.submit(d) for d in deliveries)))

        asyncio.run(submit_all())
    finally:
        writer.stop()


def test_recent_quarantine_lists_the_newest_quarantined_deliveries_with_reason_and_advice(
    tmp_path: Path,
) -> None:
    con = open_database(tmp_path / "live.duckdb")
    at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    _store(
        con,
        [
            Delivery("acme", "d1", "orders/create", at, "{}", b"{}", "invalid JSON: x"),
            Delivery("acme", "d2", "products/update", at, "{}", b"{}", "unknown topic x"),
            Delivery("beta", "d3", "orders/paid", at, "{}", b"{}", "Invalid JSON: y"),
            Delivery("acme", "d4", "carts/create", at, "{}", b"{}"),  # accepted
        ],
    )
    rows = recent_quarantine(con, 10)
    assert [r["delivery_id"] for r in rows] == ["d3", "d2", "d1"]  # newest first
    assert rows[1] == {
        "source": "acme",
        "delivery_id": "d2",
        "topic": "products/update",
        "received_at": "2026-03-01T12:00:00+00:00",
        "reason": "unknown topic x",
        "next": UNSUBSCRIBE,
    }
    assert [r["delivery_id"] for r in recent_quarantine(con, 1)] == ["d3"]
    assert [r["delivery_id"] for r in recent_quarantine(con, 10, source="acme")] == ["d2", "d1"]
    json_ones = recent_quarantine(con, 10, reason="INVALID json")  # any case
    assert [r["delivery_id"] for r in json_ones] == ["d3", "d1"]
    assert recent_quarantine(con, 10, source="acme", reason="nothing like it") == []


def test_count_quarantined_counts_what_the_filter_matches_after_a_delivery(
    tmp_path: Path,
) -> None:
    con = open_database(tmp_path / "live.duckdb")
    early = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    late = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    _store(
        con,
        [
            Delivery("acme", "d1", "orders/create", early, "{}", b"{}", "invalid JSON: x"),
            Delivery("acme", "d2", "orders/create", late, "{}", b"{}", "unknown topic x"),
            Delivery("beta", "d3", "orders/create", late, "{}", b"{}", "unknown topic y"),
            Delivery("acme", "d4", "carts/create", late, "{}", b"{}"),  # accepted
        ],
    )
    assert count_quarantined(con, QuarantineFilter()) == 3
    assert count_quarantined(con, QuarantineFilter(source="acme")) == 2
    assert count_quarantined(con, QuarantineFilter(since=late)) == 2
    assert count_quarantined(con, QuarantineFilter(reason="UNKNOWN", since=late)) == 2
    assert count_quarantined(con, QuarantineFilter(source="acme", reason="json")) == 1
    first_seq = con.execute("SELECT min(delivery_seq) FROM deliveries").fetchone()
    assert first_seq is not None
    assert count_quarantined(con, QuarantineFilter(), after_seq=int(first_seq[0])) == 2
