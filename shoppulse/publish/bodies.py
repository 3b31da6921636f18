"""Columns the publisher reads from raw delivery bodies: refund reasons and cart values.

The canonical events do not carry them; the bodies themselves are never published.
"""

from __future__ import annotations

import zlib

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from ingest.storage.body_codec import unpack
from ingest.storage.schema import DELIVERIES, EVENTS
from shoppulse.publish.datasets import Column, quote

#: Columns taken from the raw delivery body at publish time, by topic (the canonical event does
#: not carry them). Bodies themselves are never published. `$j` is the body as JSON, `$id` the
#: entity id. Missing or unparsable values are NULL.
_REFUND_REASON = {
    "refunds/create": "$j->>'$.note'",  # Shopify
    "charge.refunded": (  # Stripe
        "list_filter(json_extract($j, '$.data.object.refunds.data[*]'), "
        "lambda x: x->>'id' = $id)[1]->>'reason'"
    ),
}
_WOO_REFUND_REASON = (
    "list_filter(json_extract($j, '$.refunds[*]'), lambda x: x->>'id' = $id)[1]->>'reason'"
)
_CART_VALUE = (  # Shopify carts/create, carts/update: sum of line_price in shop money
    "CAST(list_aggregate(list_transform(json_extract($j, '$.line_items[*]'), "
    "lambda x: TRY_CAST(coalesce(x->>'$.line_price_set.shop_money.amount', x->>'$.line_price') "
    "AS DECIMAL(18,4))), 'sum') AS DECIMAL(18,4))"
)


class BodyColumns:
    """Reads enriched columns from the raw bodies in the live file through `live`."""

    def __init__(self, live: duckdb.DuckDBPyConnection) -> None:
        self.live = live
        self._body_codec: bool | None = None  # see _has_body_codec

    def read(
        self, enrich: str | None, extra: list[Column], event_seqs: list[int], has_deliveries: bool
    ) -> pa.Table:
        """(event_seq, `extra` columns) of these entity versions, read from their raw bodies
        (`enrich`: "refund" for refund reasons, else cart values)."""
        empty = "".join(f", NULL::{c.type} AS {c.name}" for c in extra)
        live = self.live
        if not event_seqs or not has_deliveries:
            return _arrow(live, f"SELECT NULL::BIGINT AS event_seq{empty} WHERE false")
        if enrich == "refund":
            cases = "".join(
                f"WHEN d.topic = {quote(t)} THEN {e} " for t, e in _REFUND_REASON.items()
            )
            cases += f"WHEN d.topic LIKE 'order.%' THEN {_WOO_REFUND_REASON} "
            value = f"CAST(CASE {cases}END AS VARCHAR) AS reason"
        else:
            value = (
                "e.currency AS currency, "
                f"CASE WHEN d.topic LIKE 'carts/%' THEN {_CART_VALUE} END AS value"
            )
        value = value.replace("$j", "d.j").replace("$id", "e.entity_id")
        seqs = pa.table({"seq": pa.array(sorted(set(event_seqs)), pa.int64())})
        live.register("_pub_seqs", seqs)
        try:
            lo, hi = int(seqs["seq"][0].as_py()), int(seqs["seq"][-1].as_py())
            versions = _arrow(
                live,
                f"SELECT event_seq, delivery_seq, entity_id, currency FROM {EVENTS} "
                f"WHERE event_seq BETWEEN {lo} AND {hi} "
                "AND event_seq IN (SELECT seq FROM _pub_seqs)",
            )
        finally:
            live.unregister("_pub_seqs")
        if versions.num_rows == 0:
            return _arrow(live, f"SELECT NULL::BIGINT AS event_seq{empty} WHERE false")
        bodies = self._bodies(versions["delivery_seq"])
        live.register("_pub_versions", versions)
        live.register("_pub_bodies", bodies)
        try:
            return _arrow(
                live,
                f"SELECT e.event_seq, {value} FROM _pub_versions e JOIN ("
                "SELECT delivery_seq, topic, CASE WHEN json_valid(b) THEN b::JSON END AS j "
                "FROM _pub_bodies) d USING (delivery_seq)",
            )
        finally:
            live.unregister("_pub_versions")
            live.unregister("_pub_bodies")

    def _has_body_codec(self) -> bool:
        """Whether the live file has `deliveries.body_codec` (read once: the schema of an open
        file does not change under the publisher)."""
        if self._body_codec is None:
            rows = self.live.execute(
                "SELECT count(*) FROM duckdb_columns() WHERE database_name = current_database() "
                "AND table_name = ? AND column_name = 'body_codec'",
                [DELIVERIES],
            ).fetchall()
            self._body_codec = bool(rows[0][0])
        return self._body_codec

    def _bodies(self, delivery_seqs: pa.ChunkedArray) -> pa.Table:
        """(delivery_seq, topic, b) of these deliveries, b the raw body as text (NULL when
        purged or not UTF-8). Bodies are stored compressed, so they are unpacked here."""
        live = self.live
        wanted = pa.table({"seq": pc.unique(delivery_seqs)})
        lo = int(pc.min(delivery_seqs).as_py())
        hi = int(pc.max(delivery_seqs).as_py())
        live.register("_pub_dseqs", wanted)
        try:
            # A live file of an older version (published while stopped, read-only, so not
            # migrated) has no codec column: its bodies are stored as received.
            codec = "body_codec" if self._has_body_codec() else "NULL"
            rows = live.execute(
                f"SELECT delivery_seq, topic, body, {codec} FROM {DELIVERIES} "
                f"WHERE delivery_seq BETWEEN {lo} AND {hi} "
                "AND delivery_seq IN (SELECT seq FROM _pub_dseqs)"
            ).fetchall()
        finally:
            live.unregister("_pub_dseqs")
        texts: list[str | None] = []
        for _, _, stored, codec in rows:
            try:
                raw = unpack(stored, codec)
                texts.append(raw.decode() if raw is not None else None)
            except (ValueError, UnicodeDecodeError, zlib.error):
                texts.append(None)
        return pa.table(
            {
                "delivery_seq": pa.array([r[0] for r in rows], pa.int64()),
                "topic": pa.array([r[1] for r in rows], pa.string()),
                "b": pa.array(texts, pa.string()),
            }
        )


def _arrow(con: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    return con.sql(sql).to_arrow_table()
