"""Benchmark: what a checkpoint of the live database costs, before and after ingest migration 3.

DuckDB checkpoints in the commit that takes the write-ahead log past `checkpoint_wal_mb`, and
every acknowledgement waiting on that commit waits for the checkpoint too. This builds two
databases in one run, both with the service's ingest schema: one at schema version 2 (the raw
body column compressed by DuckDB as it likes) and one current (the body column stored
uncompressed: the bodies are zlib bytes already). It writes the same rows to both, as the writer
writes them (the real sample order, one order id each, body packed as the writer packs it, the
event from the Shopify adapter), fills the write-ahead log to `--wal-mb`, times CHECKPOINT, and
repeats. It prints both times, their ratio and the file sizes. Not part of `make test`.

    .venv/bin/python -P bench/checkpoint.py                 # 64 MB, 3 rounds (about a minute)
    .venv/bin/python -P bench/checkpoint.py --wal-mb 16 --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
# Python puts bench/ first on sys.path, where this file would shadow the `ingest` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
if str(BENCH.parent) not in sys.path:
    sys.path.insert(0, str(BENCH.parent))

import duckdb  # noqa: E402
import orjson  # noqa: E402

from bench._load import ShopifyOrders  # noqa: E402
from ingest.events import CanonicalEvent  # noqa: E402
from ingest.providers import get_provider  # noqa: E402
from ingest.storage.body_codec import pack  # noqa: E402
from ingest.storage.schema import DELIVERIES, EVENTS, INGEST_MIGRATIONS, migrate  # noqa: E402
from ingest.storage.writer import event_values  # noqa: E402
from shoppulse.database import open_database  # noqa: E402
from shoppulse.settings import Settings  # noqa: E402

BATCH = 256
HEADERS = orjson.dumps(
    {"x-shopify-topic": "orders/create", "x-shopify-shop-domain": "bench.myshopify.com"}
).decode()


class Rows:
    """The rows the writer would store for signed Shopify orders, a new order id each."""

    def __init__(self) -> None:
        self._orders = ShopifyOrders("127.0.0.1", 0, "bench", "bench-secret")
        self._shopify = get_provider("shopify", Settings())
        self.delivery_seq = 0
        self.event_seq = 0

    def batch(self, size: int) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
        deliveries: list[tuple[object, ...]] = []
        events: list[tuple[int, int, str, datetime, CanonicalEvent]] = []
        for _ in range(size):
            self.delivery_seq += 1
            body = self._orders.body(7_000_000_000_000 + self.delivery_seq)
            received = datetime.now(UTC)
            normalized = self._shopify.normalize("orders/create", orjson.loads(body), {})
            stored, codec = pack(body)
            deliveries.append(
                (
                    self.delivery_seq,
                    "bench",
                    f"bench-{self.delivery_seq}",
                    "orders/create",
                    received,
                    HEADERS,
                    stored,
                    "accepted",
                    None,
                    len(normalized),
                    codec,
                )
            )
            for event in normalized:
                self.event_seq += 1
                events.append((self.event_seq, self.delivery_seq, "bench", received, event))
        return deliveries, event_values(events)


def _write(
    con: duckdb.DuckDBPyConnection,
    deliveries: list[tuple[object, ...]],
    events: list[tuple[object, ...]],
) -> None:
    con.execute("BEGIN")
    for table, rows in ((DELIVERIES, deliveries), (EVENTS, events)):
        appender = con.appender(table)
        appender.append_rows(rows)
        appender.flush()
    con.execute("COMMIT")


def _wal_bytes(path: Path) -> int:
    wal = path.with_name(path.name + ".wal")
    return wal.stat().st_size if wal.exists() else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wal-mb", type=int, default=64, help="WAL size per checkpoint (64)")
    parser.add_argument("--rounds", type=int, default=3, help="checkpoints per database (3)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        before_path, after_path = Path(tmp) / "schema2.duckdb", Path(tmp) / "current.duckdb"
        before = duckdb.connect(str(before_path))
        migrate(before, "ingest", INGEST_MIGRATIONS[:2])
        before.execute("SET checkpoint_threshold = '100GB'")  # checkpoints only when told
        after = open_database(after_path, checkpoint_wal_mb=100_000)
        rows = Rows()
        times: dict[str, list[float]] = {"schema 2": [], "current": []}
        for round_ in range(1, args.rounds + 1):
            # the same rows to both, a batch at a time, until the WAL holds --wal-mb
            while _wal_bytes(after_path) < args.wal_mb * 1_000_000:
                deliveries, events = rows.batch(BATCH)
                _write(before, deliveries, events)
                _write(after, deliveries, events)
            for name, con in (("schema 2", before), ("current", after)):
                started = time.perf_counter()
                con.execute("CHECKPOINT")
                times[name].append(time.perf_counter() - started)
            print(
                f"round {round_}: {rows.delivery_seq:,} deliveries; checkpoint of "
                f"{args.wal_mb} MB: schema 2 {times['schema 2'][-1]:.2f} s, "
                f"current {times['current'][-1]:.2f} s",
                flush=True,
            )
        before.close()
        after.close()
        old, new = statistics.median(times["schema 2"]), statistics.median(times["current"])
        print(
            f"\ncheckpoint of a {args.wal_mb} MB WAL, median of {args.rounds}: "
            f"schema 2 {old:.2f} s, current {new:.2f} s: {old / new:.1f}x faster"
        )
        print(
            f"database file: schema 2 {before_path.stat().st_size / 1e6:.0f} MB, "
            f"current {after_path.stat().st_size / 1e6:.0f} MB ({rows.delivery_seq:,} deliveries)"
        )


if __name__ == "__main__":
    main()
