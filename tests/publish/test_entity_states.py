"""Entity-state publishing on its own: carts in a real live file (`open_database`), published by
`EntityStates` into real Parquet files recorded in a real manifest, cycle by cycle."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from shoppulse.publish.datasets import CARTS
from shoppulse.publish.entity_states import EntityStates
from shoppulse.publish.heads import live_tables
from shoppulse.publish.manifest import Manifest
from shoppulse.publish.parts import CycleFiles
from tests.publish.conftest import Published

DAY1 = datetime(2026, 1, 10, 9, 0, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)
DAY3 = DAY1 + timedelta(days=2)


@dataclass
class Store:
    """A live file and the publishing side of it: a manifest and the published directory."""

    live: duckdb.DuckDBPyConnection
    root: Path
    manifest: Manifest
    states: EntityStates
    generation: int = 0
    fold: int = 0

    def cart(self, cart_id: str, created: datetime, version: int, body: str | None) -> None:
        """A cart as the engine's state holds it after the next fold, its version's event and
        the delivery that carried it (with `body`, the raw JSON, or purged)."""
        self.live.execute(
            "INSERT OR REPLACE INTO deliveries (delivery_seq, source, delivery_id, topic, "
            "received_at, body, status, event_count) "
            "VALUES (?, 'shop', ?, 'carts/update', ?, ?, 'stored', 1)",
            [version, f"d{version}", created, body.encode() if body is not None else None],
        )
        self.live.execute(
            "INSERT INTO events (event_seq, delivery_seq, source, received_at, kind, action, "
            "entity_id, currency, test, cancelled, deleted, abandoned, completed) VALUES "
            "(?, ?, 'shop', ?, 'cart', 'update', ?, 'EUR', false, false, false, false, false)",
            [version, version, created, cart_id],
        )
        self.live.execute(
            "DELETE FROM metrics_carts_hot WHERE source = 'shop' AND id = ?", [cart_id]
        )
        self.live.execute(
            "INSERT INTO metrics_carts_hot (source, id, seen, v_updated_at, v_seq, created_at, "
            "last_activity, platform_abandoned, platform_converted, order_refs, checkout_refs, "
            "fate, changed_seq) VALUES ('shop', ?, true, ?, ?, ?, ?, false, false, 0, 0, 'open', "
            "?)",
            [cart_id, created, version, created, created, self.fold + 1],
        )

    def touch(self, cart_id: str, created: datetime) -> None:
        """The engine changed the cart's creation time in the next fold, not its version."""
        self.live.execute(
            "UPDATE metrics_carts_hot SET created_at = ?, changed_seq = ? WHERE id = ?",
            [created, self.fold + 1, cart_id],
        )

    def publish(self) -> CycleFiles:
        """One cycle of the next fold, recorded in the manifest as the publisher records it."""
        self.generation += 1
        cycle = CycleFiles(self.root, self.generation)
        self.manifest.begin()
        self.states.publish(cycle, live_tables(self.live), self.fold, self.fold + 1)
        self.manifest.record(cycle.added, cycle.retired, 0.0)
        self.manifest.commit()
        self.fold += 1
        return cycle

    def published(self) -> list[tuple[Any, ...]]:
        """(day directory, id, created_at, currency, value) of every published cart."""
        files = [str(self.root / path) for path in self.manifest.files(CARTS.name)]
        if not files:
            return []
        rows = self.live.execute(
            "SELECT regexp_extract(filename, 'day=([^/]+)', 1), id, created_at, currency, value "
            f"FROM read_parquet({files}, filename = true) ORDER BY id"
        ).fetchall()
        return [tuple(r) for r in rows]


@pytest.fixture
def store(published: Published) -> Store:
    live, root, manifest = published.live, published.root, published.manifest
    return Store(live, root, manifest, EntityStates(live, manifest, root))


def body(*prices: str) -> str:
    return '{"line_items": [' + ", ".join(f'{{"line_price": "{p}"}}' for p in prices) + "]}"


def test_changed_entities_are_merged_into_their_days_file(store: Store) -> None:
    store.cart("c1", DAY1, 1, body("10.00", "2.50"))
    store.cart("c2", DAY2, 2, body("5.00"))
    store.publish()
    assert store.published() == [
        ("2026-01-10", "c1", DAY1, "EUR", Decimal("12.50")),
        ("2026-01-11", "c2", DAY2, "EUR", Decimal("5.00")),
    ]
    # A new cart on the first day: that day's file is rewritten with both, the other untouched.
    day2 = store.manifest.paths(CARTS.name, "2026-01-11")
    store.cart("c3", DAY1 + timedelta(hours=1), 3, body("1.00"))
    cycle = store.publish()
    assert store.manifest.paths(CARTS.name, "2026-01-11") == day2
    assert {f.part for f in cycle.added} == {"2026-01-10"}
    assert [r[:2] for r in store.published()] == [
        ("2026-01-10", "c1"),
        ("2026-01-11", "c2"),
        ("2026-01-10", "c3"),
    ]


def test_an_entity_whose_day_changed_leaves_its_old_day(store: Store) -> None:
    store.cart("c1", DAY1, 1, body("10.00"))
    store.cart("c2", DAY2, 2, body("5.00"))
    store.publish()
    store.touch("c1", DAY3)
    cycle = store.publish()
    assert store.published() == [
        ("2026-01-12", "c1", DAY3, "EUR", Decimal("10.00")),
        ("2026-01-11", "c2", DAY2, "EUR", Decimal("5.00")),
    ]
    # The first day had only c1: its file is retired and no new one replaces it.
    assert store.manifest.paths(CARTS.name, "2026-01-10") == []
    assert len(cycle.retired) == 1


def test_an_unchanged_version_keeps_what_was_read_from_its_purged_body(store: Store) -> None:
    store.cart("c1", DAY1, 1, body("10.00"))
    store.publish()
    store.live.execute("UPDATE deliveries SET body = NULL")  # purged
    store.touch("c1", DAY1 + timedelta(minutes=5))
    store.publish()
    assert store.published() == [
        ("2026-01-10", "c1", DAY1 + timedelta(minutes=5), "EUR", Decimal("10.00"))
    ]
    # A new version is read from its own body.
    store.cart("c1", DAY1, 2, body("7.00"))
    store.publish()
    assert store.published() == [("2026-01-10", "c1", DAY1, "EUR", Decimal("7.00"))]


def test_files_of_other_columns_are_published_again_whole(store: Store, tmp_path: Path) -> None:
    store.cart("c1", DAY1, 1, body("10.00"))
    store.publish()
    # A file of an older version, without the last column: replaced though no fold moved.
    [old] = store.manifest.paths(CARTS.name)
    older = tmp_path / "older.parquet"
    store.live.execute(
        f"COPY (SELECT * EXCLUDE (value) FROM '{store.root / old}') TO '{older}' (FORMAT parquet)"
    )
    (store.root / old).chmod(0o644)
    older.replace(store.root / old)
    fresh = EntityStates(store.live, store.manifest, store.root)  # a restarted publisher
    cycle = CycleFiles(store.root, 9)
    store.manifest.begin()
    assert fresh.publish(cycle, live_tables(store.live), store.fold, store.fold)
    store.manifest.record(cycle.added, cycle.retired, 0.0)
    store.manifest.commit()
    assert cycle.retired == [old]  # once, though both the rebuild and its day retire it
    assert store.published() == [("2026-01-10", "c1", DAY1, "EUR", Decimal("10.00"))]
    # Checked once: the next cycle finds the columns right and publishes nothing.
    again = CycleFiles(store.root, 10)
    assert not fresh.publish(again, live_tables(store.live), store.fold, store.fold)
    assert again.added == []
