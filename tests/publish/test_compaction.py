"""Compaction on its own: real Parquet parts, a real manifest and a real catalog under tmp_path.

A cycle's steps are run one by one with the real functions (write a part, compact, commit the
manifest, write the catalog); a crash is a cycle stopped between two of them, its manifest
transaction never committed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shoppulse.publish.catalog import Snapshot, catalog_path, files_location, write_catalog
from shoppulse.publish.compaction import (
    COMPACT_BASE_ROWS,
    COMPACT_FANOUT,
    COMPACT_MAX_ROWS,
    compact,
    size_class,
    tail_run,
)
from shoppulse.publish.datasets import EVENTS
from shoppulse.publish.manifest import STATE_FILE, Manifest, PartFile
from shoppulse.publish.parts import CycleFiles
from shoppulse.publish.publisher import Publisher

STEPS = ("placed", "compacted", "committed", "catalog")


class Store:
    """A live file with an `events` table of the published shape, and its published directory."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True)
        self.db_path = folder / "shoppulse.duckdb"
        self.catalog = catalog_path(self.db_path)
        self.root = Path(files_location(self.catalog))
        self.root.mkdir()
        self.live = duckdb.connect(str(self.db_path))
        columns = ", ".join(f"{c.name} {c.type}" for c in EVENTS.columns)
        self.live.execute(f"CREATE TABLE events ({columns})")
        self.manifest = Manifest(self.root / STATE_FILE)
        self.stored = 0
        self.generation = 0

    def cycle(self, rows: int, *, fanout: int, stop_after: str = "catalog") -> CycleFiles:
        """Store `rows` new events and publish them, stopping after the step `stop_after`."""
        lo, hi = self.stored + 1, self.stored + rows
        self.live.execute(
            "INSERT INTO events (event_seq, source) SELECT range, 'acme' FROM range(?, ?)",
            [lo, hi + 1],
        )
        self.stored = hi
        self.generation += 1
        cycle = CycleFiles(self.root, self.generation)
        self.manifest.begin()
        names = ", ".join(c.name for c in EVENTS.columns)
        select = f"SELECT {names} FROM events WHERE event_seq BETWEEN {lo} AND {hi}"
        cycle.append_part(self.live, EVENTS, f"{select} ORDER BY event_seq", lo, hi)
        if stop_after == "placed":
            return cycle
        compact(self.manifest, cycle, EVENTS, "event_seq", fanout)
        if stop_after == "compacted":
            return cycle
        self.manifest.record(cycle.added, cycle.retired, at=float(self.generation))
        self.manifest.set_meta("generation", self.generation)
        self.manifest.set_meta("event_seq", hi)
        self.manifest.commit()
        if stop_after == "committed":
            return cycle
        self.write_catalog()
        return cycle

    def write_catalog(self) -> None:
        write_catalog(
            self.catalog,
            Snapshot(
                files={"events": [str(self.root / p) for p in self.manifest.files("events")]},
                published_at=datetime.now(UTC),
                events_through=int(self.manifest.meta("event_seq")),
                deliveries_through=0,
                fold_seq=0,
                metrics_as_of=None,
                watermark=None,
                location=str(self.root),
            ),
        )

    def crash(self) -> None:
        """The process dies: the open manifest transaction is lost; the files stay on disk."""
        self.manifest.close()
        self.manifest = Manifest(self.root / STATE_FILE)
        self.generation = int(self.manifest.meta("generation"))

    def published_seqs(self) -> list[int]:
        """Every event_seq in the published files the manifest lists, in file order."""
        files = [str(self.root / p) for p in self.manifest.files("events")]
        return [
            r[0]
            for r in self.live.sql(f"SELECT event_seq FROM {EVENTS.source_sql(files)}").fetchall()
        ]

    def close(self) -> None:
        self.manifest.close()
        self.live.close()


def catalog_events(catalog: Path) -> tuple[int, int, int | None]:
    """(rows, distinct event_seq, max event_seq) of the catalog's `events` view, read with stock
    duckdb as any analyst would."""
    con = duckdb.connect(str(catalog), read_only=True)
    try:
        row = con.execute(
            "SELECT count(*), count(DISTINCT event_seq), max(event_seq) FROM events"
        ).fetchone()
    finally:
        con.close()
    assert row is not None
    return int(row[0]), int(row[1]), row[2]


def on_disk(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*.parquet")}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "data")
    yield store
    store.close()


def test_runs_of_small_parts_are_merged_and_keep_every_row_once(store: Store) -> None:
    for _ in range(9):
        store.cycle(5, fanout=3)
    # 9 parts of one class: three merges of three, then one merge of the three merged parts.
    assert store.manifest.files("events") == [
        "events/s000000000001-000000000045-g000000009m.parquet"
    ]
    [merged] = store.manifest.parts("events")
    assert (merged.rows, merged.lo, merged.hi) == (45, 1, 45)
    assert store.published_seqs() == list(range(1, 46))  # once each, in order
    assert catalog_events(store.catalog) == (45, 45, 45)


def test_parts_merged_in_the_cycle_that_wrote_them_are_never_published(store: Store) -> None:
    store.cycle(5, fanout=3)
    store.cycle(5, fanout=3)
    published = set(store.manifest.files("events"))
    cycle = store.cycle(5, fanout=3)
    # The two published parts are retired (kept on disk for older catalogs); this cycle's own
    # part was merged at once, so it is gone and never named by the manifest.
    assert set(cycle.retired) == published
    assert [a.path for a in cycle.added] == [
        "events/s000000000001-000000000015-g000000003m.parquet"
    ]
    assert on_disk(store.root) == published | {cycle.added[0].path}


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (0, 0),
        (1, 0),
        (511, 0),
        (512, 0),
        (513, 0),
        (2048, 0),
        (4095, 0),  # class 0: under COMPACT_BASE_ROWS
        (4096, 1),
        (32_767, 1),  # each class COMPACT_FANOUT times larger than the one before
        (32_768, 2),
        (262_143, 2),
        (262_144, 3),
        (2_097_151, 3),
        (2_097_152, 4),
        (COMPACT_MAX_ROWS - 1, 4),
        (COMPACT_MAX_ROWS, -1),  # final
        (COMPACT_MAX_ROWS * 10, -1),
    ],
)
def test_size_classes_start_at_the_base_and_grow_by_the_fanout(rows: int, expected: int) -> None:
    assert (COMPACT_BASE_ROWS, COMPACT_FANOUT, COMPACT_MAX_ROWS) == (4096, 8, 4_000_000)
    assert size_class(rows, COMPACT_FANOUT) == expected


def test_size_class_boundaries_are_exact_for_any_fanout() -> None:
    """Class k starts at exactly COMPACT_BASE_ROWS · fanout^(k-1) rows (a floating-point
    logarithm would put 4096 · 3^5 rows in class 5, not 6, at fanout 3)."""
    for fanout in range(2, 11):
        start, expected = COMPACT_BASE_ROWS, 1
        assert size_class(start - 1, fanout) == 0
        while start < COMPACT_MAX_ROWS:
            assert size_class(start - 1, fanout) == expected - 1, (fanout, start)
            assert size_class(start, fanout) == expected, (fanout, start)
            start, expected = start * fanout, expected + 1


@pytest.mark.parametrize("fanout", [-1, 0, 1])
def test_a_fanout_under_two_is_refused(fanout: int) -> None:
    with pytest.raises(ValueError, match="fanout must be at least 2"):
        size_class(COMPACT_BASE_ROWS, fanout)


def test_final_parts_are_never_merged_again() -> None:
    finals = [
        PartFile("events", "", f"events/final{n}.parquet", COMPACT_MAX_ROWS + n, n, n)
        for n in range(3)
    ]
    small = [PartFile("events", "", f"events/{n}.parquet", 10, n, n) for n in range(3, 5)]
    assert tail_run(finals, 3) is None  # one class, but final
    assert tail_run([finals[0], *small], 3) is None  # mixed classes
    assert tail_run([*small, small[0]], 3) == [*small, small[0]]
    assert tail_run(small, 3) is None  # fewer than fanout


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batches=st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=14),
    fanout=st.integers(min_value=2, max_value=4),
)
def test_any_batches_compacted_keep_every_row_exactly_once(
    tmp_path: Path, batches: list[int], fanout: int
) -> None:
    store = Store(tmp_path / uuid.uuid4().hex)
    try:
        for rows in batches:
            store.cycle(rows, fanout=fanout)
            assert store.published_seqs() == list(range(1, store.stored + 1))
            parts = store.manifest.parts("events")
            # Parts tile the sequence: each starts where the previous ended.
            assert [p.lo for p in parts] == [1] + [p.hi + 1 for p in parts[:-1] if p.hi]
            # The file count stays small: fewer than `fanout` parts of each size.
            assert len(parts) < fanout * (1 + len({p.rows for p in parts}))
        assert catalog_events(store.catalog) == (store.stored, store.stored, store.stored)
    finally:
        store.close()


@pytest.mark.parametrize("stop_after", STEPS[:-1])
def test_a_crash_between_steps_leaves_a_readable_consistent_catalog(
    store: Store, stop_after: str
) -> None:
    for _ in range(2):
        store.cycle(5, fanout=3)
    before = on_disk(store.root)
    assert catalog_events(store.catalog) == (10, 10, 10)

    # The third cycle would merge all three parts; it stops after `stop_after`.
    store.cycle(5, fanout=3, stop_after=stop_after)
    store.crash()
    # The catalog is the last one written, and every file it names is still there.
    assert catalog_events(store.catalog) == (10, 10, 10)
    committed = stop_after == "committed"
    assert store.published_seqs() == list(range(1, 16 if committed else 11))

    # The next start removes what no manifest row names (a crashed cycle's files) ...
    publisher = Publisher(store.live, store.db_path)
    publisher.close()
    store.crash()  # the publisher had the manifest open too
    if committed:
        assert on_disk(store.root) >= before  # merged parts are retired, kept for old catalogs
    else:
        assert on_disk(store.root) == before
    # ... and publishing goes on: every row exactly once, old catalog or new.
    if not committed:
        store.stored = 10
        store.live.execute("DELETE FROM events WHERE event_seq > 10")
    store.cycle(5, fanout=3)
    assert catalog_events(store.catalog) == (store.stored, store.stored, store.stored)
    assert store.published_seqs() == list(range(1, store.stored + 1))
