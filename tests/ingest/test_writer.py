"""The group-commit writer on a real DuckDB file: optimistic appends and duplicate batches."""

from __future__ import annotations

import asyncio
import threading
import zlib
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from ingest.events import OrderLine
from ingest.providers.base import build_event
from ingest.storage import writer as writer_module
from ingest.storage.body_codec import unpack
from ingest.storage.database import StorageError
from ingest.storage.schema import INGEST_MIGRATIONS, migrate
from ingest.storage.writer import Delivery, Outcome, Writer
from shoppulse.database import open_database


def delivery(delivery_id: str) -> Delivery:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    event = build_event(
        kind="cart",
        action="create",
        entity_id=f"cart-{delivery_id}",
        created_at=now,
        updated_at=now,
        cart_token=f"cart-{delivery_id}",
    )
    return Delivery("shop", delivery_id, "carts/create", now, "{}", b"{}", None, [event])


def events_per_delivery(con: duckdb.DuckDBPyConnection) -> list[tuple[int, str, int]]:
    """(delivery_seq, delivery_id, stored events) of every stored delivery, in seq order."""
    rows = con.execute(
        "SELECT d.delivery_seq, d.delivery_id, count(e.event_seq) FROM deliveries d "
        "LEFT JOIN events e USING (delivery_seq) GROUP BY ALL ORDER BY 1"
    ).fetchall()
    return [(int(seq), str(i), int(n)) for seq, i, n in rows]


async def submit_all(writer: Writer, ids: list[str]) -> list[Outcome]:
    return list(await asyncio.gather(*(writer.submit(delivery(i)) for i in ids)))


@pytest.mark.parametrize("cooldown", [0.0, 60.0])
def test_a_batch_holding_a_stored_delivery_stores_the_rest_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cooldown: float
) -> None:
    monkeypatch.setattr(writer_module, "DUPLICATE_COOLDOWN", cooldown)
    con = open_database(tmp_path / "live.duckdb")
    writer = Writer(con, batch_linger_ms=50)
    writer.start()
    try:
        assert asyncio.run(submit_all(writer, ["a", "b"])) == [Outcome.STORED] * 2
        # one batch: two new deliveries around one already stored (the append fails, the batch
        # is written again with the duplicate left out)
        outcomes = asyncio.run(submit_all(writer, ["c", "a", "d"]))
        assert outcomes == [Outcome.STORED, Outcome.DUPLICATE, Outcome.STORED]
        # later batches: careful (cooldown) or optimistic again (no cooldown), same answers
        assert asyncio.run(submit_all(writer, ["e", "b"])) == [Outcome.STORED, Outcome.DUPLICATE]
        assert asyncio.run(submit_all(writer, ["f"])) == [Outcome.STORED]
    finally:
        writer.stop()
    assert [(i, n) for _, i, n in events_per_delivery(con)] == [(i, 1) for i in "abcdef"]
    seqs = con.execute("SELECT event_seq FROM events ORDER BY 1").fetchall()
    assert [s[0] for s in seqs] == list(range(1, 7))  # no gaps from the rolled-back attempt
    counts = con.execute("SELECT outcome, sum(count) FROM ingest_counts GROUP BY ALL").fetchall()
    assert dict(counts) == {"duplicate": 2}


def test_bodies_are_stored_compressed_and_older_rows_stay_readable(tmp_path: Path) -> None:
    path = tmp_path / "live.duckdb"
    con = duckdb.connect(str(path))
    migrate(con, "ingest", INGEST_MIGRATIONS[:1])  # a database of the first schema version
    con.execute(
        "INSERT INTO deliveries VALUES (1, 'shop', 'old', 'carts/create', now(), '{}', "
        "'{\"old\": true}'::BLOB, 'accepted', NULL, 0)"
    )
    con.close()
    con = open_database(path)  # brings the schema up to date
    writer = Writer(con, batch_linger_ms=50)
    writer.start()
    try:
        assert asyncio.run(submit_all(writer, ["new"])) == [Outcome.STORED]
    finally:
        writer.stop()
    rows = con.execute(
        "SELECT delivery_id, body, body_codec FROM deliveries ORDER BY delivery_seq"
    ).fetchall()
    assert [(r[0], r[2]) for r in rows] == [("old", None), ("new", "zlib")]
    assert unpack(rows[0][1], rows[0][2]) == b'{"old": true}'
    assert unpack(rows[1][1], rows[1][2]) == b"{}"
    assert bytes(rows[1][1]) != b"{}"  # stored as zlib bytes, not as sent
    with pytest.raises(ValueError, match="unknown body codec"):
        unpack(b"x", "brotli")


def test_migration_3_keeps_every_delivery_and_stores_bodies_without_duckdb_compression(
    tmp_path: Path,
) -> None:
    path = tmp_path / "live.duckdb"
    con = duckdb.connect(str(path))
    migrate(con, "ingest", INGEST_MIGRATIONS[:2])  # a database of schema version 2
    body = b'{"id": 1, "note": "' + b"repeated text " * 200 + b'"}'
    con.execute(
        "INSERT INTO deliveries VALUES "
        "(1, 'shop', 'a', 'orders/create', now(), '{}', ?, 'accepted', NULL, 1, NULL), "
        "(2, 'shop', 'b', 'orders/create', now(), '{}', ?, 'quarantined', 'bad', 0, 'zlib')",
        [body, zlib.compress(body)],
    )
    before = con.execute("SELECT * FROM deliveries ORDER BY delivery_seq").fetchall()
    con.close()

    con = open_database(path)
    assert con.execute("SELECT * FROM deliveries ORDER BY delivery_seq").fetchall() == before
    with pytest.raises(duckdb.ConstraintException):  # the primary key came along
        con.execute(
            "INSERT INTO deliveries VALUES "
            "(3, 'shop', 'a', 'orders/create', now(), '{}', NULL, 'accepted', NULL, 0, NULL)"
        )
    con.execute(
        "INSERT INTO deliveries SELECT 2 + i, 'shop', 'n' || i, 'orders/create', now(), '{}', "
        "?, 'accepted', NULL, 1, NULL FROM range(1, 2000) t(i)",
        [body],  # compressible: DuckDB would compress it if the column let it
    )
    con.execute("CHECKPOINT")
    methods = con.execute(
        "SELECT DISTINCT compression FROM pragma_storage_info('deliveries') "
        "WHERE column_name = 'body' AND segment_type = 'BLOB'"
    ).fetchall()
    assert methods == [("Uncompressed",)]


def test_a_batch_that_fails_while_appending_leaves_nothing_for_the_next(tmp_path: Path) -> None:
    con = open_database(tmp_path / "live.duckdb")
    writer = Writer(con, batch_linger_ms=50)
    writer.start()
    try:
        assert asyncio.run(submit_all(writer, ["a"])) == [Outcome.STORED]
        broken = replace(delivery("broken"), received_at="not a time")  # type: ignore[arg-type]

        async def failing_batch() -> list[Outcome | BaseException]:
            return list(
                await asyncio.gather(
                    writer.submit(delivery("g")), writer.submit(broken), return_exceptions=True
                )
            )

        # the whole batch fails: "g" was appended before the broken row stopped the append
        assert all(isinstance(o, StorageError) for o in asyncio.run(failing_batch()))
        assert asyncio.run(submit_all(writer, ["h"])) == [Outcome.STORED]
    finally:
        writer.stop()
    assert events_per_delivery(con) == [(1, "a", 1), (2, "h", 1)]


@pytest.mark.parametrize(
    "amount", ["123.45", "-0.0001", "99999999999999.9999", "-99999999999999.9999", "1E+3", "0"]
)
def test_money_is_stored_exactly_whatever_its_notation(tmp_path: Path, amount: str) -> None:
    """Amounts are appended as text: the stored DECIMAL equals the event's amount exactly."""
    value = Decimal(amount)
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    line = OrderLine(quantity=3, unit_price=value, discount=-value)
    event = build_event(
        kind="order",
        action="create",
        entity_id="o-1",
        created_at=now,
        updated_at=now,
        currency="USD",
        gross_sales=value,
        discounts=value,
        lines=(line,),
    )
    con = open_database(tmp_path / "live.duckdb")
    writer = Writer(con)
    writer.start()
    try:
        stored = asyncio.run(
            writer.submit(Delivery("shop", "m", "orders/create", now, "{}", b"{}", None, [event]))
        )
    finally:
        writer.stop()
    assert stored is Outcome.STORED
    row = con.execute("SELECT gross_sales, discounts, refund_amount FROM events").fetchone()
    assert row == (value, value, None)
    assert con.execute("SELECT unit_price, discount FROM event_lines").fetchone() == (value, -value)


def test_submit_job_runs_on_the_writer_thread_and_hands_back_its_result_or_error(
    tmp_path: Path,
) -> None:
    con = open_database(tmp_path / "live.duckdb")
    writer = Writer(con)
    writer.start()
    try:
        threads = writer.submit_job(lambda job_con: threading.current_thread().name)
        rows = writer.submit_job(
            lambda job_con: job_con.execute("SELECT count(*) FROM deliveries").fetchall()
        )

        def broken(job_con: duckdb.DuckDBPyConnection) -> None:
            job_con.execute("SELECT * FROM no_such_table")

        failed = writer.submit_job(broken)
        assert threads.result(timeout=10) != threading.current_thread().name
        assert rows.result(timeout=10) == [(0,)]
        with pytest.raises(duckdb.CatalogException, match="no_such_table"):
            failed.result(timeout=10)
        # the writer keeps working after a failed job
        assert asyncio.run(submit_all(writer, ["a"])) == [Outcome.STORED]
    finally:
        writer.stop()
