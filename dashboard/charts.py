"""Chart specs (Altair) and tables for the page, built from `dashboard.model` values.

Amounts are plotted as floats (a chart's position is approximate by nature); every tooltip and
table shows the exact decimal with its currency.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import altair as alt
import pandas as pd

from dashboard import formatting as fmt
from dashboard.model import Figures, SourceRow, Trend

CHART_HEIGHT = 170
_BUCKET_FORMAT = {"minute": "%H:%M", "hour": "%b %d %H:%M", "day": "%b %d"}
_FUNNEL_COLOURS = ["#9ecae9", "#4c9bd6", "#1f5f99"]


#: The bucket still running is drawn lighter (bars) or as a hollow point off the line (lines):
#: its figure is only what came so far, not a fall.
OPEN_NOTE = "so far (still open)"
_BAR = "#4c9bd6"
_OPEN_BAR = "#c6dbef"
_LINE = "#1f5f99"


def _trend_frame(trend: Trend, now: datetime) -> pd.DataFrame:
    rows = []
    for point in trend.points:
        value = point.value
        if isinstance(value, Decimal):
            shown, plotted = fmt.money(value, point.currency), float(value)
        elif isinstance(value, int):
            shown, plotted = fmt.count(value), float(value)
        else:
            shown, plotted = fmt.DASH, None
        is_open = trend.is_open(point.bucket, now)
        rows.append(
            {
                # naive, on the zone's clock: the browser would otherwise shift the axis to its
                # own time zone
                "bucket": pd.Timestamp(point.bucket).tz_convert(trend.zone).tz_localize(None),
                "value": plotted,
                "shown": f"{shown}, {OPEN_NOTE}" if is_open else shown,
                "currency": point.currency or "",
                "open": is_open,
            }
        )
    return pd.DataFrame(rows, columns=["bucket", "value", "shown", "currency", "open"])


def _x(trend: Trend) -> alt.X:
    return alt.X(
        "bucket:T",
        title=f"{trend.grain} ({trend.zone})",
        axis=alt.Axis(format=_BUCKET_FORMAT[trend.grain], labelOverlap=True, labelFlush=True),
    )


def _tooltip(title: str) -> list[alt.Tooltip]:
    return [
        alt.Tooltip("bucket:T", title="from", format="%Y-%m-%d %H:%M"),
        alt.Tooltip("shown:N", title=title),
    ]


def orders_chart(trend: Trend, now: datetime) -> alt.Chart:
    """Orders per bucket, as bars; the bucket still open is lighter."""
    frame = _trend_frame(trend, now)
    chart: alt.Chart = (
        alt.Chart(frame, height=CHART_HEIGHT)
        .mark_bar(opacity=0.9)
        .encode(
            x=_x(trend),
            y=alt.Y("value:Q", title="orders", axis=alt.Axis(tickMinStep=1)),
            color=alt.condition(alt.datum.open, alt.value(_OPEN_BAR), alt.value(_BAR)),
            tooltip=_tooltip("orders"),
        )
    )
    return chart


def sales_chart(trend: Trend, now: datetime) -> alt.LayerChart:
    """Net sales per bucket, one straight-segment line per currency (named in the axis title
    when only one) over the finished buckets; the bucket still open is a hollow point apart."""
    frame = _trend_frame(trend, now)
    currencies = sorted({p.currency for p in trend.points if p.currency})
    several = len(currencies) > 1
    title = "net sales" if several or not currencies else f"net sales ({currencies[0]})"
    colour = (
        alt.Color("currency:N", title=None, legend=alt.Legend(orient="top"))
        if several
        else alt.value(_LINE)
    )
    base = alt.Chart(frame, height=CHART_HEIGHT).encode(
        x=_x(trend), y=alt.Y("value:Q", title=title), color=colour, tooltip=_tooltip("net sales")
    )
    finished = base.transform_filter(~alt.datum.open).mark_line(
        point=alt.OverlayMarkDef(size=14), interpolate="linear"
    )
    still_open = base.transform_filter(alt.datum.open).mark_point(filled=False, size=40)
    return alt.LayerChart(layer=[finished, still_open])


def funnel_frame(figures: Figures) -> pd.DataFrame:
    """Carts created, checkouts started and orders of the window; each step's share of the last."""
    steps = [
        ("Carts created", figures.carts_created),
        ("Checkouts started", figures.checkouts_started),
        ("Orders", figures.orders),
    ]
    rows = []
    for index, (step, value) in enumerate(steps):
        before = steps[index - 1][1] if index else 0
        share = f" ({fmt.percent(value / before)})" if before else ""
        rows.append({"step": step, "count": value, "label": f"{fmt.count(value)}{share}"})
    return pd.DataFrame(rows, columns=["step", "count", "label"])


def funnel_chart(figures: Figures) -> alt.LayerChart:
    frame = funnel_frame(figures)
    top = max(1, int(frame["count"].max()))
    base = alt.Chart(frame, height=CHART_HEIGHT).encode(
        y=alt.Y("step:N", title=None, sort=None, axis=alt.Axis(labelLimit=200)),
        # room on the right for the labels
        x=alt.X("count:Q", title=None, scale=alt.Scale(domain=[0, top * 1.8]), axis=None),
        tooltip=[alt.Tooltip("step:N"), alt.Tooltip("label:N", title="count")],
    )
    bars = base.mark_bar(cornerRadiusEnd=3).encode(
        color=alt.Color("step:N", legend=None, scale=alt.Scale(range=_FUNNEL_COLOURS), sort=None)
    )
    labels = base.mark_text(align="left", dx=4, color="#31333f").encode(text="label:N")
    return alt.LayerChart(layer=[bars, labels])


def _money_cell(row: SourceRow, field: str) -> str:
    parts = [
        fmt.money(getattr(money, field), money.currency)
        for money in row.figures.by_currency
        if money.currency is not None
    ]
    return " · ".join(parts) or fmt.DASH


def sources_frame(rows: tuple[SourceRow, ...]) -> pd.DataFrame:
    """The per-source breakdown of the window, with each source's delivery counts."""
    columns = [
        "source",
        "orders",
        "net sales",
        "AOV",
        "cart conversion",
        "checkout abandonment",
        "accepted",
        "duplicates",
        "quarantined",
        "rejected",
    ]
    return pd.DataFrame(
        [
            {
                "source": row.source,
                "orders": row.figures.orders,
                "net sales": _money_cell(row, "net_sales"),
                "AOV": _money_cell(row, "aov"),
                "cart conversion": fmt.percent(row.figures.cart_conversion_rate),
                "checkout abandonment": fmt.percent(row.figures.checkout_abandonment_rate),
                "accepted": row.accepted,
                "duplicates": row.duplicate,
                "quarantined": row.quarantined,
                "rejected": row.rejected,
            }
            for row in rows
        ],
        columns=columns,
    )
