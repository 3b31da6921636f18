"""The metrics tables' columns are defined once (metrics.schema): the migrated live file, the
fold's Polars schemas and the metric definitions all agree with those definitions."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from metrics import fold
from metrics.definitions import FUNNEL_COUNTS, METRICS
from metrics.schema import CHANGE_LOGS, FUNNEL_LOG, STATE_TABLES, ChangeLog, StateTable
from shoppulse.database import open_database

#: How DuckDB names the SQL types the definitions use.
_SPELLED = {"TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE"}


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
    rows = con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? "
        "ORDER BY column_index",
        [table],
    ).fetchall()
    return [(str(name), str(kind)) for name, kind in rows]


def _not_null(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    rows = con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = ? AND NOT is_nullable",
        [table],
    ).fetchall()
    return {str(row[0]) for row in rows}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> duckdb.DuckDBPyConnection:
    path: Path = tmp_path_factory.mktemp("schema") / "live.duckdb"
    return open_database(path)


@pytest.mark.parametrize("state", STATE_TABLES, ids=lambda s: s.name)
def test_the_migrated_state_tables_have_exactly_the_defined_columns(
    live: duckdb.DuckDBPyConnection, state: StateTable
) -> None:
    defined = [(c.name, _SPELLED.get(c.type, c.type)) for c in state.columns]
    for part in ("hot", "cold"):
        assert _columns(live, f"{state.name}_{part}") == defined
    assert _columns(live, state.name) == defined  # the view over both
    # The hot table keeps the constraints of the columns the first migration created.
    required = {c.name for c in state.columns if c.not_null}
    assert _not_null(live, f"{state.name}_hot") == required


@pytest.mark.parametrize("kind", [fold.ORDER, fold.REFUND, fold.CHECKOUT, fold.CART])
def test_the_fold_reads_each_state_table_with_its_polars_schema(
    live: duckdb.DuckDBPyConnection, kind: fold.Kind
) -> None:
    for part in ("hot", "cold"):
        read = live.sql(f"SELECT * FROM {kind.table}_{part}").pl()
        assert dict(read.schema) == dict(kind.schema)
    assert kind.columns == [c.name for c in kind.state.columns]
    assert dict(kind.empty().schema) == dict(kind.schema)


@pytest.mark.parametrize("log", CHANGE_LOGS, ids=lambda c: c.table)
def test_each_change_log_and_its_view_have_the_defined_columns(
    live: duckdb.DuckDBPyConnection, log: ChangeLog
) -> None:
    names = [name for name, _ in _columns(live, log.table)]
    assert names == [*log.key, *log.value_names, "changed_seq", "cause"]
    view = dict(_columns(live, log.view))
    assert list(view) == [*log.key, *log.value_names, "changed_seq"]
    for name, kind in log.values:
        assert view[name] == kind, name


def test_the_sums_as_of_a_fold_count_only_the_changes_folded_by_then(tmp_path: Path) -> None:
    con = open_database(tmp_path / "live.duckdb")
    zeros = ", ".join("0" for _ in FUNNEL_COUNTS[1:])
    for fold_seq, created in ((1, 2), (2, 5), (3, -1)):
        con.execute(
            f"INSERT INTO {FUNNEL_LOG.table} VALUES "
            f"('shop', TIMESTAMPTZ '2026-01-01 10:00:00+00', {created}, {zeros}, {fold_seq}, "
            "'delivery')"
        )
    first = FUNNEL_COUNTS[0]

    def created_as_of(fold_seq: int | None) -> int:
        row = con.execute(
            f"SELECT {first}, changed_seq FROM ({FUNNEL_LOG.sums(fold_seq)})"
        ).fetchone()
        assert row is not None
        return int(row[0])

    assert [created_as_of(n) for n in (1, 2, 3, None)] == [2, 7, 6, 6]
    view = con.execute(f"SELECT {first} FROM {FUNNEL_LOG.view}").fetchone()
    assert view is not None and int(view[0]) == 6


def test_the_funnel_log_holds_every_funnel_count_metric() -> None:
    assert FUNNEL_LOG.value_names == FUNNEL_COUNTS
    counts = [m.name for m in METRICS.values() if m.kind == "count"]
    assert sorted(counts) == sorted(["orders", *FUNNEL_COUNTS])
