"""Aggregate publishing on its own: change-log rows in a real live file (`open_database`),
published into real Parquet files recorded in a real manifest, fold by fold."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from metrics.definitions import FUNNEL_COUNTS
from shoppulse.publish.aggregates import aggregates_changed, publish_aggregates
from shoppulse.publish.datasets import FUNNEL_MINUTE, SALES_MINUTE
from shoppulse.publish.heads import live_tables
from shoppulse.publish.manifest import Manifest
from shoppulse.publish.parts import CycleFiles
from tests.publish.conftest import Published

DAY1 = datetime(2026, 1, 10, 9, 0, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)


@dataclass
class Store:
    live: duckdb.DuckDBPyConnection
    root: Path
    manifest: Manifest
    generation: int = 0
    published_fold: int = 0

    def sale(self, minute: datetime, fold: int, orders: int, gross: str) -> None:
        """A change of the sales bucket of `minute`, made by `fold`."""
        self.live.execute(
            "INSERT INTO metrics_sales_deltas (source, currency, minute, orders, gross_sales, "
            "discounts, returns, changed_seq) VALUES ('shop', 'EUR', ?, ?, ?, 0, 0, ?)",
            [minute, orders, Decimal(gross), fold],
        )

    def cart(self, minute: datetime, fold: int) -> None:
        """A cart created in `minute`, folded by `fold`."""
        counts = ", ".join(FUNNEL_COUNTS)
        values = ", ".join("1" if name == "carts_created" else "0" for name in FUNNEL_COUNTS)
        self.live.execute(
            f"INSERT INTO metrics_funnel_deltas (source, minute, {counts}, changed_seq) "
            f"VALUES ('shop', ?, {values}, ?)",
            [minute, fold],
        )

    def publish(self, fold: int) -> CycleFiles:
        """Publish the folds up to `fold`, recorded as the publisher records a cycle."""
        self.generation += 1
        cycle = CycleFiles(self.root, self.generation)
        self.manifest.begin()
        publish_aggregates(
            self.live, self.manifest, cycle, live_tables(self.live), self.published_fold, fold
        )
        self.manifest.record(cycle.added, cycle.retired, 0.0)
        self.manifest.commit()
        self.published_fold = fold
        return cycle

    def published(self, dataset: str, columns: str) -> list[tuple[Any, ...]]:
        files = [str(self.root / path) for path in self.manifest.files(dataset)]
        if not files:
            return []
        return [
            tuple(r)
            for r in self.live.execute(
                f"SELECT {columns} FROM read_parquet({files}) ORDER BY minute"
            ).fetchall()
        ]

    def sales(self) -> list[tuple[Any, ...]]:
        return self.published(SALES_MINUTE.name, "minute, orders, gross_sales")


@pytest.fixture
def store(published: Published) -> Store:
    return Store(published.live, published.root, published.manifest)


def test_each_aggregate_is_published_per_minute_by_day(store: Store) -> None:
    store.sale(DAY1, 1, 1, "10.00")
    store.sale(DAY1, 1, 1, "5.00")
    store.sale(DAY2, 1, 1, "7.00")
    store.cart(DAY1 + timedelta(minutes=3), 1)
    cycle = store.publish(1)
    assert store.sales() == [(DAY1, 2, Decimal("15.00")), (DAY2, 1, Decimal("7.00"))]
    assert {(f.dataset, f.part) for f in cycle.added} == {
        ("sales_minute", "2026-01-10"),
        ("sales_minute", "2026-01-11"),
        ("funnel_minute", "2026-01-10"),
    }
    assert store.published(FUNNEL_MINUTE.name, "minute, carts_created") == [
        (DAY1 + timedelta(minutes=3), 1)
    ]


def test_only_the_days_a_fold_changed_are_rewritten(store: Store) -> None:
    store.sale(DAY1, 1, 1, "10.00")
    store.sale(DAY2, 1, 1, "7.00")
    store.publish(1)
    day2 = store.manifest.paths(SALES_MINUTE.name, "2026-01-11")
    store.sale(DAY1 + timedelta(minutes=1), 2, 1, "1.00")
    cycle = store.publish(2)
    assert {f.part for f in cycle.added} == {"2026-01-10"}
    assert store.manifest.paths(SALES_MINUTE.name, "2026-01-11") == day2
    assert store.sales() == [
        (DAY1, 1, Decimal("10.00")),
        (DAY1 + timedelta(minutes=1), 1, Decimal("1.00")),
        (DAY2, 1, Decimal("7.00")),
    ]


def test_the_sums_are_as_of_the_published_fold(store: Store) -> None:
    store.sale(DAY1, 1, 1, "10.00")
    store.sale(DAY1, 3, 1, "4.00")  # a later fold, already in the log
    store.publish(2)
    assert store.sales() == [(DAY1, 1, Decimal("10.00"))]
    store.publish(3)
    assert store.sales() == [(DAY1, 2, Decimal("14.00"))]


def test_a_bucket_whose_changes_cancel_out_is_not_published(store: Store) -> None:
    store.sale(DAY1, 1, 1, "10.00")
    store.sale(DAY1 + timedelta(minutes=1), 1, 1, "3.00")
    store.publish(1)
    store.sale(DAY1, 2, -1, "-10.00")  # the order is undone
    store.publish(2)
    assert store.sales() == [(DAY1 + timedelta(minutes=1), 1, Decimal("3.00"))]
    # The day's last bucket undone too: its file is retired and none replaces it.
    store.sale(DAY1 + timedelta(minutes=1), 3, -1, "-3.00")
    cycle = store.publish(3)
    assert store.sales() == []
    assert cycle.added == [] and len(cycle.retired) == 1


def test_whether_a_fold_changed_any_aggregate(store: Store) -> None:
    present = live_tables(store.live)
    store.sale(DAY1, 2, 1, "10.00")
    store.cart(DAY1, 4)
    assert [aggregates_changed(store.live, present, fold - 1, fold) for fold in range(1, 6)] == [
        False,
        True,
        False,
        True,
        False,
    ]
    assert not aggregates_changed(store.live, set(), 0, 5)  # a file without change logs
