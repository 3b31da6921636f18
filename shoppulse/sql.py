"""SQL access for analysts: the published datasets, the views over them, and read-only queries.

The service publishes immutable Parquet files beside the live database (see `shoppulse.publish`)
and a small catalog, `<db dir>/analytics.duckdb`, that holds nothing but views over those files.
This module is the read contract: which datasets are published with which columns, which views
analysts query, how a read-only connection is opened, and the `sql` and `export` commands' work.
docs/sql.md documents every view and column; a test holds the two together.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from metrics.schema import FUNNEL_COUNTS
from shoppulse.money_sql import aov_sql, minor_units_sql

CATALOG_NAME = "analytics.duckdb"
PUBLISHED_DIR = "analytics"

#: Statement types a `shoppulse sql` query may contain: reading only.
_READ_STATEMENTS = frozenset({"SELECT", "EXPLAIN"})


def catalog_path(db_path: Path) -> Path:
    """The analysts' catalog for the live database at `db_path`: `<db dir>/analytics.duckdb`."""
    return db_path.parent / CATALOG_NAME


def published_dir(db_path: Path) -> Path:
    """Where the published Parquet files live: `<db dir>/analytics/`."""
    return db_path.parent / PUBLISHED_DIR


def files_location(catalog: Path) -> str:
    """The absolute, symlink-free directory of the Parquet files of `catalog`.

    The views name their files by absolute paths, so that any client opens the catalog from any
    working directory. The catalog records the directory it was written for (`publish_info.
    location`); a catalog whose folder was moved or copied since is re-pointed at open (see
    `open_catalog`) and rewritten by the next publish.
    """
    return str(catalog.parent.resolve() / PUBLISHED_DIR)


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    live: str | None = None  # the expression in the live table; None: filled in by the publisher

    @property
    def expression(self) -> str:
        return self.live if self.live is not None else f"NULL::{self.type}"


@dataclass(frozen=True)
class Dataset:
    """One published dataset: a set of Parquet files with these columns."""

    name: str
    columns: tuple[Column, ...]

    def empty_sql(self) -> str:
        cols = ", ".join(f"NULL::{c.type} AS {c.name}" for c in self.columns)
        return f"(SELECT {cols} WHERE false)"

    def source_sql(self, files: Sequence[str]) -> str:
        """A FROM item that reads exactly `files` (or an empty relation of the right shape)."""
        if not files:
            return self.empty_sql()
        listed = ", ".join(quote(f) for f in files)
        return f"read_parquet([{listed}], hive_partitioning = false)"


def quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _cols(*spec: tuple[str, str] | tuple[str, str, str]) -> tuple[Column, ...]:
    return tuple(Column(s[0], s[1], s[2] if len(s) == 3 else s[0]) for s in spec)


TS = "TIMESTAMPTZ"
MONEY = "DECIMAL(18,4)"
SUM = "DECIMAL(38,4)"

EVENTS = Dataset(
    "events",
    _cols(
        ("event_seq", "BIGINT"),
        ("delivery_seq", "BIGINT"),
        ("source", "VARCHAR"),
        ("received_at", TS),
        ("kind", "VARCHAR"),
        ("action", "VARCHAR"),
        ("entity_id", "VARCHAR"),
        ("created_at", TS),
        ("updated_at", TS),
        ("cart_token", "VARCHAR"),
        ("checkout_token", "VARCHAR"),
        ("order_id", "VARCHAR"),
        ("currency", "VARCHAR"),
        ("gross_sales", MONEY),
        ("discounts", MONEY),
        ("refund_amount", MONEY),
        ("test", "BOOLEAN"),
        ("cancelled", "BOOLEAN"),
        ("deleted", "BOOLEAN"),
        ("abandoned", "BOOLEAN"),
        ("completed", "BOOLEAN"),
    ),
)
DELIVERIES = Dataset(
    "deliveries",
    _cols(
        ("delivery_seq", "BIGINT"),
        ("source", "VARCHAR"),
        ("delivery_id", "VARCHAR"),
        ("topic", "VARCHAR"),
        ("received_at", TS),
        ("status", "VARCHAR"),
        ("reason", "VARCHAR"),
        ("event_count", "INTEGER"),
    ),
)
#: Later status changes of published deliveries (a replay of a quarantined delivery).
DELIVERY_OVERRIDES = Dataset(
    "delivery_overrides",
    _cols(
        ("delivery_seq", "BIGINT"),
        ("status", "VARCHAR"),
        ("reason", "VARCHAR"),
        ("event_count", "INTEGER"),
    ),
)
#: The fields of one order line, in the `lines` list of the orders dataset.
LINE_FIELDS = (
    ("line", "INTEGER"),
    ("product_id", "VARCHAR"),
    ("variant_id", "VARCHAR"),
    ("sku", "VARCHAR"),
    ("title", "VARCHAR"),
    ("quantity", "BIGINT"),
    ("unit_price", MONEY),
    ("discount", MONEY),
)
LINES = "STRUCT(" + ", ".join(f"{name} {kind}" for name, kind in LINE_FIELDS) + ")[]"

ORDERS = Dataset(
    "orders",
    (
        *_cols(
            ("source", "VARCHAR"),
            ("id", "VARCHAR"),
            ("created_at", TS),
            ("updated_at", TS, "v_updated_at"),
            ("currency", "VARCHAR"),
            ("gross_sales", MONEY),
            ("discounts", MONEY),
            ("test", "BOOLEAN"),
            ("cancelled", "BOOLEAN"),
            ("deleted", "BOOLEAN"),
            ("cart_token", "VARCHAR"),
            ("checkout_token", "VARCHAR"),
            ("version_seq", "BIGINT", "v_seq"),
        ),
        # From the version's stored event (see shoppulse/publish/event_columns.py).
        Column("name", "VARCHAR", None),
        Column("lines", LINES, None),
    ),
)
REFUNDS = Dataset(
    "refunds",
    (
        *_cols(
            ("source", "VARCHAR"),
            ("id", "VARCHAR"),
            ("order_id", "VARCHAR"),
            ("created_at", TS),
            ("updated_at", TS, "v_updated_at"),
            ("currency", "VARCHAR"),
            ("amount", MONEY),
            ("counted", "BOOLEAN"),
            ("counted_currency", "VARCHAR"),
            ("version_seq", "BIGINT", "v_seq"),
        ),
        Column("reason", "VARCHAR", None),
    ),
)
CARTS = Dataset(
    "carts",
    (
        *_cols(
            ("source", "VARCHAR"),
            ("id", "VARCHAR"),
            ("created_at", TS),
            ("updated_at", TS, "v_updated_at"),
            ("last_activity", TS),
            ("platform_abandoned", "BOOLEAN"),
            ("platform_converted", "BOOLEAN"),
            ("fate", "VARCHAR"),
            ("version_seq", "BIGINT", "v_seq"),
        ),
        Column("currency", "VARCHAR", None),
        Column("value", MONEY, None),
    ),
)
CHECKOUTS = Dataset(
    "checkouts",
    (
        *_cols(
            ("source", "VARCHAR"),
            ("id", "VARCHAR"),
            ("created_at", TS),
            ("updated_at", TS, "v_updated_at"),
            ("last_activity", TS),
            ("cart_token", "VARCHAR"),
            ("platform_abandoned", "BOOLEAN"),
            ("platform_completed", "BOOLEAN"),
            ("fate", "VARCHAR"),
            ("version_seq", "BIGINT", "v_seq"),
        ),
        Column("currency", "VARCHAR", None),
        Column("value", MONEY, None),
    ),
)
SALES_MINUTE = Dataset(
    "sales_minute",
    _cols(
        ("source", "VARCHAR"),
        ("currency", "VARCHAR"),
        ("minute", TS),
        ("orders", "BIGINT"),
        ("gross_sales", SUM),
        ("discounts", SUM),
        ("returns", SUM),
    ),
)
FUNNEL_MINUTE = Dataset(
    "funnel_minute",
    (
        *_cols(("source", "VARCHAR"), ("minute", TS)),
        *(Column(name, "BIGINT", name) for name in FUNNEL_COUNTS),
    ),
)
#: Every aggregate change with its fold and cause (`metrics.history.changes_sql`), appended by fold.
METRIC_CHANGES = Dataset(
    "metric_changes",
    _cols(
        ("fold_seq", "BIGINT"),
        ("folded_at", TS),
        ("cause", "VARCHAR"),
        ("source", "VARCHAR"),
        ("currency", "VARCHAR"),
        ("minute", TS),
        ("metric", "VARCHAR"),
        ("value", SUM),
    ),
)
INGEST_COUNTS = Dataset(
    "ingest_counts",
    _cols(
        ("source", "VARCHAR"),
        ("outcome", "VARCHAR"),
        ("reason", "VARCHAR"),
        ("count", "BIGINT"),
        ("last_at", TS),
    ),
)

DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        EVENTS,
        DELIVERIES,
        DELIVERY_OVERRIDES,
        ORDERS,
        REFUNDS,
        CARTS,
        CHECKOUTS,
        SALES_MINUTE,
        FUNNEL_MINUTE,
        METRIC_CHANGES,
        INGEST_COUNTS,
    )
}


# ----------------------------------------------------------------------------- views


def _utc(column: str) -> str:
    """`column` (TIMESTAMPTZ) as a UTC wall-clock TIMESTAMP, whatever the session's TimeZone."""
    return f"timezone('UTC', {column})"


def _bucket(grain: str) -> str:
    if grain == "day":
        return f"CAST({_utc('minute')} AS DATE) AS day"
    return f"timezone('UTC', date_trunc('hour', {_utc('minute')})) AS hour"


def _ratio(numerator: str, denominator: str) -> str:
    return f"CASE WHEN {denominator} = 0 THEN NULL ELSE {numerator} / {denominator} END"


def _sales_view(grain: str) -> str:
    if grain == "minute":
        return (
            "SELECT source, NULLIF(currency, '') AS currency, minute, orders, gross_sales, "
            "discounts, returns, gross_sales - discounts - returns AS net_sales, "
            f"{aov_sql('gross_sales', 'discounts', 'orders')} AS aov FROM {{sales_minute}}"
        )
    key = grain
    return (
        f"SELECT source, currency, {key}, orders, gross_sales, discounts, returns, "
        "gross_sales - discounts - returns AS net_sales, "
        f"{aov_sql('gross_sales', 'discounts', 'orders')} AS aov FROM ("
        f"SELECT source, NULLIF(currency, '') AS currency, {_bucket(grain)}, "
        "CAST(sum(orders) AS BIGINT) AS orders, CAST(sum(gross_sales) AS DECIMAL(38,4)) AS "
        "gross_sales, CAST(sum(discounts) AS DECIMAL(38,4)) AS discounts, "
        "CAST(sum(returns) AS DECIMAL(38,4)) AS returns "
        f"FROM {{sales_minute}} GROUP BY ALL)"
    )


def _funnel_view(grain: str) -> str:
    rates = (
        f"{_ratio('carts_converted', 'carts_created')} AS cart_conversion_rate, "
        f"{_ratio('carts_abandoned', 'carts_created')} AS cart_abandonment_rate, "
        f"{_ratio('checkouts_completed', 'checkouts_started')} AS checkout_conversion_rate, "
        f"{_ratio('checkouts_abandoned', 'checkouts_started')} AS checkout_abandonment_rate"
    )
    counts = ", ".join(FUNNEL_COUNTS)
    if grain == "minute":
        return f"SELECT source, minute, {counts}, {rates} FROM {{funnel_minute}}"
    sums = ", ".join(f"CAST(sum({c}) AS BIGINT) AS {c}" for c in FUNNEL_COUNTS)
    return (
        f"SELECT source, {grain}, {counts}, {rates} FROM ("
        f"SELECT source, {_bucket(grain)}, {sums} FROM {{funnel_minute}} GROUP BY ALL)"
    )


_COUNTED_ORDER = (
    "(created_at IS NOT NULL AND NOT coalesce(test, false) AND NOT deleted "
    "AND NOT coalesce(cancelled, false))"
)

#: The views analysts query, in creation order. `{dataset}` stands for the dataset's files.
VIEWS: dict[str, str] = {
    "events": "SELECT * FROM {events}",
    "deliveries": (
        "SELECT d.delivery_seq, d.source, d.delivery_id, d.topic, d.received_at, "
        "coalesce(o.status, d.status) AS status, "
        "CASE WHEN o.delivery_seq IS NULL THEN d.reason ELSE o.reason END AS reason, "
        "coalesce(o.event_count, d.event_count) AS event_count "
        "FROM {deliveries} d LEFT JOIN {delivery_overrides} o ON o.delivery_seq = d.delivery_seq"
    ),
    "quarantine": (
        "SELECT delivery_seq, source, delivery_id, topic, received_at, reason "
        "FROM deliveries WHERE status = 'quarantined'"
    ),
    "orders": f"SELECT * EXCLUDE (lines), {_COUNTED_ORDER} AS counted FROM {{orders}}",
    "order_lines": (
        "SELECT o.source, o.id AS order_id, o.name AS order_name, o.created_at, o.currency, "
        "l.line, l.product_id, l.variant_id, l.sku, l.title, l.quantity, l.unit_price, "
        "CAST(l.unit_price * l.quantity AS DECIMAL(38,4)) AS gross_sales, "
        "l.discount AS line_discount, o.counted, o.test, o.cancelled, o.deleted "
        f"FROM (SELECT *, {_COUNTED_ORDER} AS counted FROM {{orders}}) o, "
        "unnest(o.lines) AS t(l)"
    ),
    "refunds": "SELECT * FROM {refunds}",
    "carts": "SELECT * FROM {carts}",
    "checkouts": "SELECT * FROM {checkouts}",
    "sales_by_minute": _sales_view("minute"),
    "sales_by_hour": _sales_view("hour"),
    "sales_by_day": _sales_view("day"),
    "funnel_by_minute": _funnel_view("minute"),
    "funnel_by_hour": _funnel_view("hour"),
    "funnel_by_day": _funnel_view("day"),
    "aov_by_day": (
        "SELECT day, source, currency, orders, "
        f"{aov_sql('gross_sales', 'discounts', 'orders', 'minor_units')} AS aov, minor_units "
        f"FROM (SELECT *, {minor_units_sql('currency')} AS minor_units FROM sales_by_day "
        "WHERE orders > 0 AND currency IS NOT NULL)"
    ),
    "ingest_counts": "SELECT * FROM {ingest_counts}",
    "metric_history": "SELECT * FROM {metric_changes}",
}


@dataclass(frozen=True)
class Snapshot:
    """What one published catalog shows: its files and how far it reaches."""

    files: Mapping[str, Sequence[str]]
    published_at: datetime
    events_through: int
    deliveries_through: int
    fold_seq: int
    metrics_as_of: datetime | None
    watermark: datetime | None
    location: str = ""  # the absolute directory of `files` (see `files_location`)


def _literal(value: datetime | None) -> str:
    return "NULL::TIMESTAMPTZ" if value is None else f"{quote(value.isoformat())}::TIMESTAMPTZ"


def view_statements(snapshot: Snapshot) -> list[str]:
    """CREATE VIEW statements of every analyst view over `snapshot`'s files."""
    sources = {
        name: dataset.source_sql(snapshot.files.get(name, ())) for name, dataset in DATASETS.items()
    }
    statements = [
        f"CREATE OR REPLACE VIEW {name} AS {template.format(**sources)}"
        for name, template in VIEWS.items()
    ]
    statements.append(
        "CREATE OR REPLACE VIEW publish_info AS SELECT "
        f"{_literal(snapshot.published_at)} AS published_at, "
        f"CAST({int(snapshot.events_through)} AS BIGINT) AS events_through, "
        f"CAST({int(snapshot.deliveries_through)} AS BIGINT) AS deliveries_through, "
        f"CAST({int(snapshot.fold_seq)} AS BIGINT) AS fold_seq, "
        f"{_literal(snapshot.metrics_as_of)} AS metrics_as_of, "
        f"{_literal(snapshot.watermark)} AS watermark, "
        f"{quote(snapshot.location)} AS location"
    )
    return statements


def write_catalog(path: Path, snapshot: Snapshot) -> None:
    """Write a new catalog beside `path` and rename it over `path` in one step.

    Readers that have the old catalog open keep it (and the files it names, until the grace
    period ends); new readers get the new one. Nobody ever opens the catalog read-write, so the
    rename never waits for or breaks a reader.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        con = duckdb.connect(str(temporary))
        try:
            con.execute("BEGIN TRANSACTION")
            for statement in view_statements(snapshot):
                con.execute(statement)
            con.execute("COMMIT")
        finally:
            con.close()
        fsync_file(temporary)
        os.chmod(temporary, 0o444)
        os.replace(temporary, path)
        fsync_dir(path.parent)
    finally:
        temporary.unlink(missing_ok=True)
        Path(f"{temporary}.wal").unlink(missing_ok=True)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------- reading


class SqlError(Exception):
    """The query was refused or failed; the message says why."""


def open_catalog(catalog: Path, *, lockdown: bool = True) -> duckdb.DuckDBPyConnection:
    """A read-only connection whose default schema holds the analyst views of `catalog`.

    The catalog is attached READ_ONLY to an in-memory database, so every call sees the newest
    catalog (no in-process cache). With `lockdown`, the connection may read only the published
    Parquet files: no other file, no extension install, no configuration change.
    """
    if not catalog.exists():
        raise SqlError(
            f"no published catalog at {catalog}: start the service (`shoppulse serve`) or run "
            "`shoppulse sql` with the same --db while it is stopped"
        )
    con = duckdb.connect(":memory:")
    try:
        con.execute(f"ATTACH {quote(str(catalog))} AS analytics (READ_ONLY)")
        here = files_location(catalog)
        written = _written_location(con)
        if written is not None and written != here:
            _repoint(con, written, here)
        else:
            con.execute("USE analytics")
        con.execute("SET TimeZone = 'UTC'")
        if lockdown:
            allowed = here + os.sep
            con.execute(f"SET allowed_directories = [{quote(allowed)}]")
            con.execute("SET enable_external_access = false")
            con.execute("SET autoinstall_known_extensions = false")
            con.execute("SET autoload_known_extensions = false")
            con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


def _written_location(con: duckdb.DuckDBPyConnection) -> str | None:
    """The directory the attached catalog's views name their files in (None: a catalog written
    before it was recorded)."""
    try:
        rows = con.execute("SELECT location FROM analytics.publish_info").fetchall()
    except duckdb.BinderException:
        return None
    return str(rows[0][0]) if rows and rows[0][0] else None


def _repoint(con: duckdb.DuckDBPyConnection, written: str, here: str) -> None:
    """Recreate the attached catalog's views in `con`'s own in-memory database, naming the files
    in `here` instead of `written` (the data folder was moved or copied since the catalog was
    written), and make them the default schema."""
    old = re.compile(re.escape(quote(written)[:-1]) + r"(?=[/'])")
    new = quote(here)[:-1]
    views = con.execute(
        "SELECT view_name, sql FROM duckdb_views() WHERE database_name = 'analytics' "
        "AND NOT internal"
    ).fetchall()
    order = list(VIEWS)  # creation order: a view comes after the views it reads
    views.sort(key=lambda v: order.index(v[0]) if v[0] in order else len(order))
    con.execute("USE memory")
    for _, statement in views:
        con.execute(old.sub(lambda _: new, str(statement)))
    con.execute("DETACH analytics")


def check_read_only(sql: str) -> None:
    """Refuse anything but SELECT-like statements (COPY, ATTACH, INSTALL, SET, ...)."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise SqlError(str(exc)) from None
    if not statements:
        raise SqlError("no SQL statement given")
    for statement in statements:
        kind = str(statement.type).rsplit(".", 1)[-1].upper()
        if kind not in _READ_STATEMENTS:
            raise SqlError(
                f"only queries are allowed (SELECT, WITH, EXPLAIN, DESCRIBE, SHOW); "
                f"refused a {kind} statement"
            )


def query(con: duckdb.DuckDBPyConnection, sql: str) -> duckdb.DuckDBPyRelation | None:
    """Run a read-only query; the relation of its last statement."""
    check_read_only(sql)
    try:
        return con.sql(sql)
    except duckdb.Error as exc:
        raise SqlError(str(exc).strip()) from None


def export(con: duckdb.DuckDBPyConnection, directory: Path) -> dict[str, Any]:
    """Write every analyst view of `con`'s snapshot as `<directory>/<view>.parquet`.

    All views are read from one catalog, so the files agree with each other. A manifest
    (`manifest.json`) says when the snapshot was published and how many rows each file holds.
    """
    directory.mkdir(parents=True, exist_ok=True)
    info_row = con.execute("SELECT * FROM publish_info").fetchall()[0]
    info_names = [d[0] for d in con.execute("SELECT * FROM publish_info LIMIT 0").description]
    info = {
        name: value.isoformat() if isinstance(value, datetime) else value
        for name, value in zip(info_names, info_row, strict=True)
    }
    con.execute("BEGIN TRANSACTION")
    rows: dict[str, int] = {}
    try:
        for view in (*VIEWS, "publish_info"):
            target = directory / f"{view}.parquet"
            temporary = directory / f".{view}.parquet.tmp"
            con.execute(f"COPY (SELECT * FROM {view}) TO {quote(str(temporary))} (FORMAT parquet)")
            os.replace(temporary, target)
            count = con.execute(f"SELECT count(*) FROM read_parquet({quote(str(target))})")
            rows[view] = int(count.fetchall()[0][0])
    finally:
        con.execute("COMMIT")
    manifest = {
        "exported_at": datetime.now(UTC).isoformat(),
        "snapshot": info,
        "files": {view: f"{view}.parquet" for view in rows},
        "rows": rows,
    }
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
