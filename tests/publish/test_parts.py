"""Part placement on its own: which file each row lands in, on a real DuckDB file and real
Parquet files under tmp_path."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from shoppulse.publish.datasets import Column, Dataset
from shoppulse.publish.parts import SCRATCH_DIR, CycleFiles, day_of, range_name

ROWS = Dataset("rows", (Column("id", "VARCHAR"), Column("created_at", "TIMESTAMPTZ")))


@pytest.fixture
def live(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect(str(tmp_path / "live.duckdb"))
    # Not UTC on purpose: a row's day is its UTC day whatever the session's zone.
    con.execute("SET TimeZone = 'America/New_York'")
    con.execute("CREATE TABLE entities (seq BIGINT, id VARCHAR, created_at TIMESTAMPTZ)")
    con.execute(
        "INSERT INTO entities VALUES "
        "(1, 'a', '2026-01-10 09:00:00+00'), "
        "(2, 'b', '2026-01-10 23:59:59+00'), "
        "(3, 'c', '2026-01-10 20:30:00-05:00'), "  # 01:30 UTC on the 11th
        "(4, 'd', NULL), "
        "(5, 'e', '2026-01-09 00:00:00+00')"
    )
    yield con
    con.close()


def ids(con: duckdb.DuckDBPyConnection, path: Path) -> list[str]:
    """The ids in the file at `path`, read the way the catalog's views read it."""
    rows = con.execute(f"SELECT id FROM {ROWS.source_sql([str(path)])} ORDER BY id").fetchall()
    return [r[0] for r in rows]


def test_each_row_lands_in_the_file_of_its_utc_day(
    live: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    root = tmp_path / "analytics"
    cycle = CycleFiles(root, generation=7)
    added = cycle.partitioned(
        live, ROWS, f"SELECT id, created_at, {day_of('created_at')} AS _part FROM entities"
    )

    assert [(f.part, f.path) for f in added] == [
        ("2026-01-09", "rows/day=2026-01-09/g000000007-0.parquet"),
        ("2026-01-10", "rows/day=2026-01-10/g000000007-0.parquet"),
        ("2026-01-11", "rows/day=2026-01-11/g000000007-0.parquet"),
        ("none", "rows/day=none/g000000007-0.parquet"),
    ]
    landed = {f.part: ids(live, root / f.path) for f in added}
    assert landed == {
        "2026-01-09": ["e"],
        "2026-01-10": ["a", "b"],
        "2026-01-11": ["c"],
        "none": ["d"],
    }
    assert cycle.added == added and cycle.rows == 5
    assert cycle.written == [root / f.path for f in added]
    # The files carry the dataset's columns only (the part is in the name, not in the rows).
    columns = live.execute(
        f"DESCRIBE SELECT * FROM {ROWS.source_sql([str(root / added[0].path)])}"
    ).fetchall()
    assert [c[0] for c in columns] == ["id", "created_at"]
    # Published files are read-only, and nothing is left in the scratch directory.
    assert all(not (root / f.path).stat().st_mode & stat.S_IWUSR for f in added)
    assert list((root / SCRATCH_DIR).iterdir()) == []


def test_an_append_part_is_named_by_the_range_it_holds(
    live: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    root = tmp_path / "analytics"
    cycle = CycleFiles(root, generation=3)
    part = cycle.append_part(
        live, ROWS, "SELECT id, created_at FROM entities WHERE seq > 1 AND seq <= 4", 2, 4
    )
    assert (
        part.path
        == range_name("rows", 2, 4, 3)
        == "rows/s000000000002-000000000004-g000000003.parquet"
    )
    assert (part.rows, part.lo, part.hi, part.part) == (3, 2, 4, "")
    assert ids(live, root / part.path) == ["b", "c", "d"]
    assert range_name("rows", 1, 9, 5, merged=True).endswith("-g000000005m.parquet")


def test_a_whole_file_replaces_the_dataset_each_cycle(
    live: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    root = tmp_path / "analytics"
    first = CycleFiles(root, generation=1).whole_file(
        live, ROWS, "SELECT id, created_at FROM entities"
    )
    second = CycleFiles(root, generation=2).whole_file(
        live, ROWS, "SELECT id, created_at FROM entities WHERE id = 'a'"
    )
    assert (first.path, first.rows) == ("rows/g000000001.parquet", 5)
    assert (second.path, second.rows) == ("rows/g000000002.parquet", 1)
    assert ids(live, root / first.path) == ["a", "b", "c", "d", "e"]  # never changed


def test_a_discarded_cycle_removes_every_file_it_placed(
    live: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    root = tmp_path / "analytics"
    kept = CycleFiles(root, generation=1).whole_file(
        live, ROWS, "SELECT id, created_at FROM entities"
    )
    failed = CycleFiles(root, generation=2)
    failed.append_part(live, ROWS, "SELECT id, created_at FROM entities", 1, 5)
    failed.partitioned(
        live, ROWS, f"SELECT id, created_at, {day_of('created_at')} AS _part FROM entities"
    )
    assert len(failed.written) == 5
    failed.discard()
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*.parquet")) == [kept.path]
