"""Window figures and time series, read from the per-minute aggregates.

Windows are half-open [from, to) and aligned to the minute (both ends are rounded down to the
minute, since the aggregates are per minute). Ratios are computed from the window's sums.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import duckdb

from metrics.definitions import FUNNEL_COUNTS, METRICS, Grain, Metric, definition_versions
from metrics.history import FoldAt, fold_at
from metrics.schema import CURSOR, FUNNEL_LOG, SALES_LOG

CENT = Decimal("0.01")


def floor_minute(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.replace(second=0, microsecond=0)


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    source: str | None = None

    @classmethod
    def around(
        cls,
        now: datetime,
        start: datetime | None,
        end: datetime | None,
        source: str | None,
        default: timedelta = timedelta(hours=24),
    ) -> Window:
        end = floor_minute(end) if end else floor_minute(now) + timedelta(minutes=1)
        start = floor_minute(start) if start else end - default
        if start >= end:
            raise ValueError("'from' must be before 'to'")
        return cls(start, end, source)

    def where(self) -> tuple[str, list[Any]]:
        clause = "minute >= ? AND minute < ?"
        params: list[Any] = [self.start, self.end]
        if self.source:
            clause += " AND source = ?"
            params.append(self.source)
        return clause, params


@dataclass(frozen=True)
class AsOf:
    """Read the figures as reported at `moment`: as of `fold` (None: no fold yet by then)."""

    moment: datetime
    fold: FoldAt | None

    @classmethod
    def at(cls, con: duckdb.DuckDBPyConnection, moment: datetime) -> AsOf:
        moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
        return cls(moment, fold_at(con, moment))

    def tables(self) -> tuple[str, str]:
        """The sales and funnel minutes as of the fold (subqueries standing for the views)."""
        upto = self.fold.fold_seq if self.fold is not None else 0
        return f"({SALES_LOG.sums(upto)})", f"({FUNNEL_LOG.sums(upto)})"


def _tables(as_of: AsOf | None) -> tuple[str, str]:
    return (SALES_LOG.view, FUNNEL_LOG.view) if as_of is None else as_of.tables()


def _money(value: Decimal | None) -> str | None:
    """Exact decimal string; trailing zeros beyond cents are dropped (12.5000 -> 12.50)."""
    if value is None:
        return None
    quantized = value.quantize(CENT) if value == value.quantize(CENT) else value.normalize()
    return format(quantized, "f")


def _ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 6) if denominator else None


def _money_figures(
    orders: int, gross: Decimal, discounts: Decimal, returns: Decimal
) -> dict[str, Any]:
    aov = ((gross - discounts) / orders).quantize(Decimal("0.0001")) if orders else None
    return {
        "orders": orders,
        "gross_sales": _money(gross),
        "discounts": _money(discounts),
        "returns": _money(returns),
        "net_sales": _money(gross - discounts - returns),
        "aov": _money(aov),
    }


def freshness(
    con: duckdb.DuckDBPyConnection, now: datetime, as_of: AsOf | None = None
) -> dict[str, Any]:
    if as_of is None:
        row = con.execute(
            f"SELECT evaluated_at, watermark_received_at, event_seq FROM {CURSOR}"
        ).fetchall()[0]
        evaluated_at, watermark, event_seq = row
    elif as_of.fold is None:
        evaluated_at, watermark, event_seq = None, None, 0
    else:
        fold = as_of.fold
        evaluated_at, watermark, event_seq = fold.evaluated_at, fold.watermark, fold.event_seq
    return {
        "as_of": evaluated_at.isoformat() if evaluated_at else None,
        "watermark": watermark.isoformat() if watermark else None,
        "freshness_seconds": round((now - watermark).total_seconds(), 3) if watermark else None,
        "events_folded_through": int(event_seq),
    }


def window_figures(
    con: duckdb.DuckDBPyConnection, window: Window, now: datetime, as_of: AsOf | None = None
) -> dict[str, Any]:
    """Every figure of `window`, as they are now or as reported at `as_of` (then `now` is its
    moment)."""
    where, params = window.where()
    sales_table, funnel_table = _tables(as_of)
    sales = con.execute(
        f"SELECT currency, sum(orders), sum(gross_sales), sum(discounts), sum(returns) "
        f"FROM {sales_table} WHERE {where} GROUP BY currency ORDER BY currency",
        params,
    ).fetchall()
    funnel_row = con.execute(
        f"SELECT {', '.join(f'coalesce(sum({c}), 0)' for c in FUNNEL_COUNTS)} "
        f"FROM {funnel_table} WHERE {where}",
        params,
    ).fetchall()[0]
    funnel = {name: int(value) for name, value in zip(FUNNEL_COUNTS, funnel_row, strict=True)}
    by_currency = [
        {"currency": currency or None, **_money_figures(int(o), g, d, r)}
        for currency, o, g, d, r in sales
        if int(o) or g or d or r
    ]
    money_currencies = [c for c in by_currency if c["currency"] is not None]
    single = money_currencies[0] if len(money_currencies) == 1 else None
    result: dict[str, Any] = {
        "source": window.source,
        "from": window.start.isoformat(),
        "to": window.end.isoformat(),
        "orders": sum(c["orders"] for c in by_currency),
        "currency": single["currency"] if single else None,
        **{
            name: (single[name] if single else None)
            for name in ("gross_sales", "discounts", "returns", "net_sales", "aov")
        },
        "by_currency": by_currency,
        "orders_without_amounts": sum(c["orders"] for c in by_currency if c["currency"] is None),
        **funnel,
        "cart_conversion_rate": _ratio(funnel["carts_converted"], funnel["carts_created"]),
        "cart_abandonment_rate": _ratio(funnel["carts_abandoned"], funnel["carts_created"]),
        "checkout_conversion_rate": _ratio(
            funnel["checkouts_completed"], funnel["checkouts_started"]
        ),
        "checkout_abandonment_rate": _ratio(
            funnel["checkouts_abandoned"], funnel["checkouts_started"]
        ),
        "provisional": funnel["carts_open"] > 0 or funnel["checkouts_open"] > 0,
    }
    result.update(freshness(con, now, as_of))
    result["definition_versions"] = definition_versions()
    return result


def _bucket(grain: Grain, zone: str) -> tuple[str, list[Any]]:
    """SQL for the start of a minute's bucket: the hour or day begins on `zone`'s clock (an
    order at 23:30 UTC falls on the next day in Europe/Berlin); minutes are the same anywhere."""
    if grain == "minute":
        return "minute", []
    return f"timezone(?, date_trunc('{grain}', timezone(?, minute)))", [zone, zone]


def timeseries(
    con: duckdb.DuckDBPyConnection,
    metric: Metric,
    grain: Grain,
    window: Window,
    zone: str = "UTC",
    as_of: AsOf | None = None,
) -> list[dict[str, Any]]:
    """One point per bucket that has data (per currency for money and AOV), now or as reported
    at `as_of`; hour and day buckets follow the IANA time zone `zone`."""
    where, where_params = window.where()
    bucket, bucket_params = _bucket(grain, zone)
    params = [*bucket_params, *where_params]
    sales_table, funnel_table = _tables(as_of)
    if metric.name in FUNNEL_COUNTS or metric.kind == "rate":
        parts = [metric.name] if metric.kind == "count" else [metric.numerator, metric.denominator]
        rows = con.execute(
            f"SELECT {bucket} AS bucket, {', '.join(f'sum({p})' for p in parts)} "
            f"FROM {funnel_table} "
            f"WHERE {where} GROUP BY bucket ORDER BY bucket",
            params,
        ).fetchall()
        points = []
        for row in rows:
            if metric.kind == "count":
                value: Any = int(row[1])
            else:
                value = _ratio(int(row[1]), int(row[2]))
            points.append({"bucket": row[0].isoformat(), "value": value})
        return points
    rows = con.execute(
        f"SELECT {bucket} AS bucket, currency, sum(orders), sum(gross_sales), sum(discounts), "
        f"sum(returns) FROM {sales_table} WHERE {where} "
        "GROUP BY bucket, currency ORDER BY bucket, currency",
        params,
    ).fetchall()
    points = []
    for moment, currency, orders, gross, discounts, returns in rows:
        figures = _money_figures(int(orders), gross, discounts, returns)
        if metric.name == "orders":
            points.append(
                {
                    "bucket": moment.isoformat(),
                    "currency": currency or None,
                    "value": figures["orders"],
                }
            )
        else:
            points.append(
                {
                    "bucket": moment.isoformat(),
                    "currency": currency or None,
                    "value": figures[metric.name],
                }
            )
    if metric.name == "orders":  # a count: one point per bucket across currencies
        merged: dict[str, int] = {}
        for point in points:
            merged[point["bucket"]] = merged.get(point["bucket"], 0) + point["value"]
        return [{"bucket": b, "value": v} for b, v in merged.items()]
    return points


def known_metric(name: str) -> Metric:
    try:
        return METRICS[name]
    except KeyError:
        raise ValueError(f"unknown metric '{name}'; known: {', '.join(METRICS)}") from None
