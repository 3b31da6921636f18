"""The property reconciliation exists for: lost webhooks, filled from the store's API, leave the
metrics exactly as if nothing had been lost; and a second run fills nothing.

Two real services (real DuckDB files): one receives every webhook of a Shopify, a WooCommerce, a
BigCommerce and a Stripe store, the other the same stream with a random 10 % dropped, then
reconciles against a stand-in API (real HTTP on 127.0.0.1) that knows every order's (and
session's and refund's) latest version.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from fastapi.testclient import TestClient

from ingest.sources import Source
from shoppulse.service import create_app
from shoppulse.settings import Settings
from tests.conftest import SECRET, FrozenClock
from tests.helpers.app import figures
from tests.ingest.reconcile_streams import (
    Stream,
    bigcommerce_orders,
    shopify_orders,
    stripe_sessions,
    woo_orders,
)
from tests.ingest.store_api_stand_in import (
    BC_HASH,
    BC_TOKEN,
    SHOPIFY_TOKEN,
    STRIPE_KEY,
    WOO_KEY,
    WOO_SECRET,
    StoreApi,
    running_store_api,
)
from tests.metrics.shop import WEEK

SINCE = "2025-12-01T00:00:00Z"


@pytest.fixture
def api() -> Iterator[StoreApi]:
    with running_store_api() as server:
        yield server


def store_sources(url: str) -> dict[str, Source]:
    shop = {
        "id": "shop",
        "provider": "shopify",
        "secrets": [SECRET],
        "shop_domain": "acme.myshopify.com",
        "api_token": SHOPIFY_TOKEN,
        "api_base_url": url,
    }
    woo = {
        "id": "woo",
        "provider": "woocommerce",
        "secrets": [SECRET],
        "consumer_key": WOO_KEY,
        "consumer_secret": WOO_SECRET,
        "api_base_url": url,
    }
    bc = {
        "id": "bc",
        "provider": "bigcommerce",
        "secrets": [SECRET],
        "store_hash": BC_HASH,
        "api_token": BC_TOKEN,
        "api_base_url": url,
    }
    stripe = {"id": "st", "provider": "stripe", "secrets": [SECRET], "api_key": STRIPE_KEY}
    stripe["api_base_url"] = url
    return {str(s["id"]): Source.model_validate(s) for s in (shop, woo, bc, stripe)}


def service(tmp_path: Path, name: str, url: str) -> TestClient:
    settings = Settings(
        db_path=tmp_path / name / "shoppulse.duckdb",
        batch_linger_ms=0.5,
        reconcile_interval_seconds=0,
    )
    return TestClient(create_app(settings, store_sources(url), clock=FrozenClock()))


def reconcile(client: TestClient, **body: Any) -> list[dict[str, Any]]:
    """Start a run of every source (or `source`) and wait for the reports."""
    response = client.post("/api/v1/reconciliation/runs", json={"since": SINCE, **body})
    assert response.status_code == 202, response.text
    reports = []
    for run in response.json()["runs"]:
        deadline = time.monotonic() + 60
        while True:
            report = client.get(f"/api/v1/reconciliation/runs/{run['run_id']}").json()
            if report["status"] != "running":
                break
            assert time.monotonic() < deadline, report
            time.sleep(0.05)
        reports.append(report)
    return reports


def comparable(body: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v
        for k, v in body.items()
        if k not in ("evaluated_at", "watermark", "as_of", "events_folded_through")
    }


SOURCES = ("shop", "woo", "bc", "st")


def settled(client: TestClient) -> list[dict[str, Any]]:
    """Each source's figures once BigCommerce order enrichment has fetched every amount."""
    deadline = time.monotonic() + 30
    while figures(client, **WEEK, source="bc")["orders_without_amounts"]:
        assert time.monotonic() < deadline, "enrichment did not finish"
        time.sleep(0.05)
    return [comparable(figures(client, **WEEK, source=s)) for s in SOURCES]


# Seeds whose drops include whole entities and latest versions on every platform.
@pytest.mark.parametrize("seed", [5, 27, 36])
def test_dropped_webhooks_reconciled_give_the_full_streams_metrics(
    tmp_path: Path, api: StoreApi, seed: int
) -> None:
    rng = random.Random(seed)
    stream = Stream()
    shopify_orders(stream, rng, 25)
    woo_orders(stream, rng, 20)
    bigcommerce_orders(stream, rng, 15)
    stripe_sessions(stream, rng, 20)
    stream.fill(api)
    kept = [send for send in stream.sends if rng.random() >= 0.1]
    assert len(kept) < len(stream.sends), "the seed drops nothing"

    with service(tmp_path, "full", api.url) as full:
        for send in stream.sends:
            send(full)
        expected = settled(full)

    with service(tmp_path, "lossy", api.url) as lossy:
        for send in kept:
            send(lossy)
        assert settled(lossy) != expected  # the drop shows in the metrics

        first = reconcile(lossy)
        assert [r["source"] for r in first] == sorted(SOURCES)
        assert all(r["status"] == "ok" and r["errors"] == 0 for r in first), first
        assert all(r["filled"] > 0 for r in first), first  # every platform lost something
        assert sum(r["newer"] for r in first) > 0, first  # and some latest versions
        for got, want in zip(settled(lossy), expected, strict=True):
            assert {k: v for k, v in got.items() if want.get(k) != v} == {}, want

        second = reconcile(lossy)
        assert all(r["status"] == "ok" for r in second), second
        assert [(r["missing"], r["newer"], r["errors"]) for r in second] == [(0, 0, 0)] * 4
        assert [r["fetched"] for r in second] == [r["fetched"] for r in first]
        assert settled(lossy) == expected

    # What reconciliation stored is marked as fetched from the store's API, and the figures'
    # history names it as the cause of the changes it made.
    with duckdb.connect(str(tmp_path / "lossy" / "shoppulse.duckdb"), read_only=True) as con:
        origins = con.execute(
            "SELECT DISTINCT d.delivery_id LIKE 'reconcile:%', e.origin "
            "FROM events e JOIN deliveries d USING (delivery_seq) ORDER BY ALL"
        ).fetchall()
        causes = con.execute(
            "SELECT DISTINCT cause FROM metrics_sales_deltas "
            "UNION SELECT DISTINCT cause FROM metrics_funnel_deltas"
        ).fetchall()
    # (BigCommerce amounts fetched for webhook orders are fills too: `(False, "fill")`.)
    assert (True, "fill") in origins and (True, "webhook") not in origins, origins
    assert ("reconciliation_fill",) in causes, causes
