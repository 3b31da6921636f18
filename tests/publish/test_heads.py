"""Reading the heads on their own: a real live file (`open_database`) under tmp_path, rows
inserted as ingest and the metrics engine store them, and files that lack some tables."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from shoppulse.database import open_database
from shoppulse.publish.heads import Heads, Positions, live_tables, read_heads

T0 = datetime(2026, 1, 10, 9, 0, tzinfo=UTC)
NOTHING = Positions(0, 0, 0, "")


@pytest.fixture
def live(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = open_database(tmp_path / "live.duckdb")
    try:
        yield con
    finally:
        con.close()


def store(con: duckdb.DuckDBPyConnection, deliveries: range, events: range) -> None:
    """Deliveries and events with these sequence numbers, as ingest stores them."""
    for seq in deliveries:
        con.execute(
            "INSERT INTO deliveries (delivery_seq, source, delivery_id, topic, received_at, "
            "status, event_count) VALUES (?, 'shop', ?, 'orders/create', ?, 'stored', 1)",
            [seq, f"d{seq}", T0],
        )
    for seq in events:
        con.execute(
            "INSERT INTO events (event_seq, delivery_seq, source, received_at, kind, action, "
            "entity_id, test, cancelled, deleted, abandoned, completed) "
            "VALUES (?, 1, 'shop', ?, 'order', 'create', ?, false, false, false, false, false)",
            [seq, T0, f"o{seq}"],
        )


def heads_of(con: duckdb.DuckDBPyConnection, since: Positions = NOTHING) -> Heads:
    return read_heads(con, live_tables(con), since)


def seqs(heads: Heads) -> tuple[int, int]:
    return heads.event_seq, heads.delivery_seq


def test_the_heads_are_the_newest_stored_rows(live: duckdb.DuckDBPyConnection) -> None:
    store(live, range(1, 4), range(1, 6))
    assert seqs(heads_of(live)) == (5, 3)
    # A publisher that has published some of them: only what is newer moves its heads.
    assert seqs(heads_of(live, Positions(2, 1, 0, ""))) == (5, 3)
    # Nothing newer than what was published: the heads stay where the publisher is.
    assert seqs(heads_of(live, Positions(5, 3, 0, ""))) == (5, 3)
    assert seqs(heads_of(live, Positions(9, 7, 0, ""))) == (9, 7)


def test_the_counts_change_when_a_counter_is_updated_in_place(
    live: duckdb.DuckDBPyConnection,
) -> None:
    empty = heads_of(live).counts
    live.execute("INSERT INTO ingest_counts VALUES ('shop', 'stored', '', 1, ?)", [T0])
    one = heads_of(live).counts
    assert one != empty
    assert heads_of(live).counts == one  # read again, nothing changed: the same
    live.execute("UPDATE ingest_counts SET count = 2, last_at = ?", [T0 + timedelta(seconds=1)])
    assert heads_of(live).counts not in (empty, one)


def test_the_fold_is_the_one_whose_state_is_written(live: duckdb.DuckDBPyConnection) -> None:
    # The engine has folded up to 9 but written the entity state of folds up to 7 only.
    live.execute(
        "UPDATE metrics_cursor SET fold_seq = 9, evaluated_at = ?, watermark_received_at = ?, "
        "state_fold_seq = 7, state_evaluated_at = ?, state_watermark_received_at = ?",
        [T0 + timedelta(minutes=9), T0 + timedelta(minutes=8), T0, T0 - timedelta(minutes=1)],
    )
    heads = heads_of(live)
    assert (heads.fold_seq, heads.evaluated_at, heads.watermark) == (
        7,
        T0,
        T0 - timedelta(minutes=1),
    )


def test_a_cursor_from_before_the_state_columns_means_every_fold(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "old.duckdb"))
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(
            "CREATE TABLE metrics_cursor (id INTEGER PRIMARY KEY, event_seq BIGINT NOT NULL, "
            "fold_seq BIGINT NOT NULL, evaluated_at TIMESTAMPTZ, "
            "watermark_received_at TIMESTAMPTZ, folded_at TIMESTAMPTZ)"
        )
        con.execute("INSERT INTO metrics_cursor VALUES (1, 40, 4, ?, ?, NULL)", [T0, T0])
        heads = heads_of(con)
        assert (heads.fold_seq, heads.evaluated_at, heads.watermark) == (4, T0, T0)
    finally:
        con.close()


def test_a_file_without_some_tables_has_not_moved_there(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "partial.duckdb"))
    try:
        con.execute("CREATE TABLE events (event_seq BIGINT)")
        con.execute("INSERT INTO events VALUES (1), (2)")
        assert live_tables(con) == {"events"}
        heads = heads_of(con, Positions(0, 6, 3, "earlier"))
        # No deliveries: where the publisher is; no cursor: no fold; no counters: none.
        assert heads == Heads(2, 6, 0, "", None, None)
    finally:
        con.close()


def test_the_live_tables_are_the_files_tables_and_views(live: duckdb.DuckDBPyConnection) -> None:
    tables = live_tables(live)
    assert {"events", "deliveries", "ingest_counts", "metrics_cursor"} <= tables
    assert {"metrics_orders", "metrics_sales_minute"} <= tables  # views
    # Another attached database's tables are not the live file's.
    live.execute("ATTACH ':memory:' AS other")
    live.execute("CREATE TABLE other.elsewhere (x INTEGER)")
    assert live_tables(live) == tables
