"""Ingest's tables in the live DuckDB file, and how every component's tables are migrated.

Each component (ingest, reconciliation, metrics) owns its tables as a `Schema` and keeps its own
version in `schema_versions`. A migration is a list of statements applied in one transaction.
Migrations run in one place only, when the live file is opened (`shoppulse.database`); the
components that use the tables only check that they are up to date (`check_schema`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb

DELIVERIES = "deliveries"
EVENTS = "events"
INGEST_COUNTS = "ingest_counts"
EVENT_LINES = "event_lines"

MONEY_TYPE = "DECIMAL(18,4)"

#: The `origin` of an event: a webhook delivery, a delivery replayed out of quarantine, or an
#: event fetched from the store's API to fill in what a webhook left out.
WEBHOOK = "webhook"
REPLAY = "replay"
FILL = "fill"

INGEST_MIGRATIONS: list[list[str]] = [
    [
        f"""
        CREATE TABLE {DELIVERIES} (
            delivery_seq BIGINT NOT NULL,
            source VARCHAR NOT NULL,
            delivery_id VARCHAR NOT NULL,
            topic VARCHAR NOT NULL,
            received_at TIMESTAMPTZ NOT NULL,
            headers VARCHAR,
            body BLOB,
            status VARCHAR NOT NULL,
            reason VARCHAR,
            event_count INTEGER NOT NULL,
            PRIMARY KEY (source, delivery_id)
        )
        """,
        f"""
        CREATE TABLE {EVENTS} (
            event_seq BIGINT NOT NULL,
            delivery_seq BIGINT NOT NULL,
            source VARCHAR NOT NULL,
            received_at TIMESTAMPTZ NOT NULL,
            kind VARCHAR NOT NULL,
            action VARCHAR NOT NULL,
            entity_id VARCHAR NOT NULL,
            created_at TIMESTAMPTZ,
            updated_at TIMESTAMPTZ,
            cart_token VARCHAR,
            checkout_token VARCHAR,
            order_id VARCHAR,
            currency VARCHAR,
            gross_sales {MONEY_TYPE},
            discounts {MONEY_TYPE},
            refund_amount {MONEY_TYPE},
            test BOOLEAN NOT NULL,
            cancelled BOOLEAN NOT NULL,
            deleted BOOLEAN NOT NULL,
            abandoned BOOLEAN NOT NULL,
            completed BOOLEAN NOT NULL
        )
        """,
        f"""
        CREATE TABLE {INGEST_COUNTS} (
            source VARCHAR NOT NULL,
            outcome VARCHAR NOT NULL,
            reason VARCHAR NOT NULL,
            count BIGINT NOT NULL,
            last_at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (source, outcome, reason)
        )
        """,
    ],
    # 2: raw bodies stored compressed (see ingest.storage.body_codec); NULL = stored as received.
    [f"ALTER TABLE {DELIVERIES} ADD COLUMN body_codec VARCHAR"],
    # 3: `body` stored without DuckDB's own compression. The bodies are zlib bytes already, which
    # no method shrinks, and DuckDB's analysis of them (dict_fsst) was most of every checkpoint:
    # 1.4 s instead of 0.33 s for a 64 MB write-ahead log (bench/checkpoint.py), a stall every
    # acknowledgement waits for. DuckDB sets compression per column only when a table is
    # created, so the table is rebuilt (rows, order and primary key unchanged).
    [
        f"""
        CREATE TABLE {DELIVERIES}_rebuilt (
            delivery_seq BIGINT NOT NULL,
            source VARCHAR NOT NULL,
            delivery_id VARCHAR NOT NULL,
            topic VARCHAR NOT NULL,
            received_at TIMESTAMPTZ NOT NULL,
            headers VARCHAR,
            body BLOB USING COMPRESSION uncompressed,
            status VARCHAR NOT NULL,
            reason VARCHAR,
            event_count INTEGER NOT NULL,
            body_codec VARCHAR,
            PRIMARY KEY (source, delivery_id)
        )
        """,
        f"INSERT INTO {DELIVERIES}_rebuilt SELECT * FROM {DELIVERIES} ORDER BY delivery_seq",
        f"DROP TABLE {DELIVERIES}",
        f"ALTER TABLE {DELIVERIES}_rebuilt RENAME TO {DELIVERIES}",
    ],
    # 4: orders' display names and line items (canonical `name` and `lines`). A line belongs to
    # the event that carried it; `line` is its 1-based position in the order.
    [
        f"ALTER TABLE {EVENTS} ADD COLUMN name VARCHAR",
        f"""
        CREATE TABLE {EVENT_LINES} (
            event_seq BIGINT NOT NULL,
            line INTEGER NOT NULL,
            product_id VARCHAR,
            variant_id VARCHAR,
            sku VARCHAR,
            title VARCHAR,
            quantity BIGINT NOT NULL,
            unit_price {MONEY_TYPE} NOT NULL,
            discount {MONEY_TYPE} NOT NULL
        )
        """,
    ],
    # 5: where an event came from: a webhook, a replay out of quarantine, or a fill fetched
    # from the store's API (BigCommerce enrichment). The metrics name it as a change's cause.
    [f"ALTER TABLE {EVENTS} ADD COLUMN origin VARCHAR DEFAULT '{WEBHOOK}'"],
]


@dataclass(frozen=True, slots=True)
class Schema:
    """A component's tables: its name in `schema_versions` and its migrations, oldest first."""

    component: str
    migrations: Sequence[Sequence[str]]

    @property
    def version(self) -> int:
        """The version the migrations bring the component to."""
        return len(self.migrations)


INGEST_SCHEMA = Schema("ingest", INGEST_MIGRATIONS)


class SchemaError(RuntimeError):
    """The live file's tables are not at the version this ShopPulse works with."""


def schema_version(con: duckdb.DuckDBPyConnection, component: str) -> int:
    """The version of `component`'s tables in the database (0: none yet)."""
    try:
        rows = con.execute(
            "SELECT version FROM schema_versions WHERE component = ?", [component]
        ).fetchall()
    except duckdb.CatalogException:  # a new file: no component has tables yet
        return 0
    return int(rows[0][0]) if rows else 0


def migrate(
    con: duckdb.DuckDBPyConnection, component: str, migrations: Sequence[Sequence[str]]
) -> int:
    """Apply the migrations of `component` that the database lacks; return its version."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_versions "
        "(component VARCHAR PRIMARY KEY, version INTEGER NOT NULL, applied_at TIMESTAMPTZ)"
    )
    current = schema_version(con, component)
    if current > len(migrations):
        raise SchemaError(
            f"the database's {component} schema is version {current}, newer than this "
            f"ShopPulse knows ({len(migrations)}): upgrade ShopPulse"
        )
    for version in range(current + 1, len(migrations) + 1):
        con.execute("BEGIN")
        try:
            for statement in migrations[version - 1]:
                con.execute(statement)
            con.execute(
                "INSERT OR REPLACE INTO schema_versions VALUES (?, ?, now())", [component, version]
            )
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
    return len(migrations)


def check_schema(con: duckdb.DuckDBPyConnection, *schemas: Schema) -> None:
    """Raise SchemaError unless the database holds each schema at its latest version."""
    for schema in schemas:
        found = schema_version(con, schema.component)
        if found != schema.version:
            raise SchemaError(
                f"the database's {schema.component} schema is version {found}, this ShopPulse "
                f"works with version {schema.version}: the file was not opened with "
                "open_database, which migrates every component"
            )
