"""The sections of the live page, each drawn from one `Snapshot` (Streamlit calls only)."""

from __future__ import annotations

from decimal import Decimal

import pandas as pd
import streamlit as st

from dashboard import charts
from dashboard import formatting as fmt
from dashboard.data import ReadClient, ServiceUnavailable
from dashboard.model import Health, Kpi, Snapshot
from dashboard.restated import CAUSE_LABELS, DAYS, THRESHOLD, RestatedDay, closed_days

QUARANTINE_LIMIT = 20
KPI_COLUMNS = 3

_HELP = {
    "orders": "Counted orders (not test, cancelled or deleted), by order time.",
    "net_sales": "Gross sales - discounts - returns, exact, in the shop currency.",
    "aov": "Average order value: (gross sales - discounts) / orders.",
    "cart_conversion_rate": "Share of the carts created in the period that an order converted.",
    "cart_abandonment_rate": "Share of the carts created in the period that were abandoned.",
    "checkout_abandonment_rate": "Share of the checkouts started in the period that were "
    "abandoned.",
}
_PROVISIONAL = " Provisional: some carts or checkouts of the period are still open."


def _tile(kpi: Kpi, compared: str) -> None:
    delta = fmt.kpi_delta(kpi)
    unchanged = delta is None or kpi.delta == 0
    st.metric(
        fmt.kpi_label(kpi),
        fmt.kpi_value(kpi),
        delta=delta,
        delta_color="off" if unchanged else ("normal" if kpi.higher_is_better else "inverse"),
        delta_description=fmt.kpi_note(kpi, compared),
        help=_HELP[kpi.name] + (_PROVISIONAL if kpi.provisional else ""),
        border=True,
    )


def kpis(snapshot: Snapshot) -> None:
    """The KPI tiles, each with its change against the previous period of equal length."""
    compared = fmt.span(snapshot.window.span)
    for start in range(0, len(snapshot.kpis), KPI_COLUMNS):
        row = snapshot.kpis[start : start + KPI_COLUMNS]
        for column, kpi in zip(st.columns(KPI_COLUMNS), row, strict=False):
            with column:
                _tile(kpi, compared)
    current = snapshot.current
    notes = []
    others = [c for c in (current.money(code) for code in current.currencies[1:]) if c]
    if others:
        also = "; ".join(
            f"net sales {fmt.money(c.net_sales, c.currency)}, AOV {fmt.money(c.aov, c.currency)}"
            for c in others
        )
        notes.append(f"Also: {also}")
    if current.orders_without_amounts:
        notes.append(f"{current.orders_without_amounts} orders without amounts")
    if any(kpi.provisional for kpi in snapshot.kpis):
        notes.append(
            f"Provisional: {current.carts_open} carts and {current.checkouts_open} checkouts of "
            "this period are still open; the rates settle as they convert or time out"
        )
    st.caption(" · ".join(notes) if notes else "\u00a0")


def trends(snapshot: Snapshot) -> None:
    grain = snapshot.orders_trend.grain
    st.subheader("Trends", anchor=False)
    st.caption(f"Per {grain}, UTC")
    left, right = st.columns(2)
    with left:
        st.altair_chart(charts.orders_chart(snapshot.orders_trend), width="stretch", key="orders")
    with right:
        st.altair_chart(charts.sales_chart(snapshot.sales_trend), width="stretch", key="sales")


def funnel(snapshot: Snapshot) -> None:
    figures = snapshot.current
    st.subheader("Funnel", anchor=False)
    st.caption(
        f"Cart conversion {fmt.percent(figures.cart_conversion_rate)} · checkout conversion "
        f"{fmt.percent(figures.checkout_conversion_rate)}"
    )
    st.altair_chart(charts.funnel_chart(figures), width="stretch", key="funnel")


def sources(snapshot: Snapshot) -> None:
    st.subheader("By source", anchor=False)
    frame = charts.sources_frame(snapshot.sources)
    if frame.empty:
        st.caption("No source has sent anything yet.")
        return
    st.dataframe(frame, hide_index=True, width="stretch", key="sources_table")


def health(client: ReadClient, snapshot: Snapshot) -> None:
    """Deliveries per second, freshness and delivery outcomes; the reasons one click away."""
    figures: Health = snapshot.health
    st.subheader("Ingestion health", anchor=False)
    first, second = st.columns(2)
    first.metric("Deliveries per second", fmt.rate_per_second(figures.deliveries_per_second))
    second.metric(
        "Freshness",
        fmt.age(figures.freshness_seconds),
        help="Age of the newest event folded into the figures.",
    )
    third, fourth, fifth = st.columns(3)
    third.metric("Duplicates", fmt.count(figures.duplicate))
    fourth.metric("Quarantined", fmt.count(figures.quarantined))
    fifth.metric("Rejected", fmt.count(figures.rejected))
    writer = "writer OK" if figures.writer_healthy else "writer FAILING: deliveries get 503"
    st.caption(
        f"{fmt.count(figures.accepted)} accepted · {writer} · queue {figures.queue_depth} · "
        f"last delivery {fmt.clock(figures.last_delivery_at)}"
    )
    reasons = st.expander("Quarantine and rejection reasons", key="reasons", on_change="rerun")
    if reasons.open:  # read only when someone looks
        with reasons:
            _reasons(client, snapshot.source, figures)


def _reasons(client: ReadClient, source: str | None, figures: Health) -> None:
    try:
        quarantined = client.quarantine(QUARANTINE_LIMIT, source)
    except ServiceUnavailable as exc:
        st.info(f"The quarantine list is not available: {exc}")
        quarantined = []
    if quarantined:
        st.markdown("**Recently quarantined** (stored; replay them after fixing the mapping)")
        frame = pd.DataFrame(
            [
                {
                    "received": fmt.clock(item.received_at),
                    "source": item.source,
                    "topic": item.topic,
                    "reason": item.reason,
                    "delivery id": item.delivery_id,
                }
                for item in quarantined
            ]
        )
        st.dataframe(frame, hide_index=True, width="stretch")
    else:
        st.caption("Nothing quarantined.")
    if figures.rejected_by_reason:
        st.markdown("**Rejected** (nothing stored; counted by reason)")
        frame = pd.DataFrame(
            [{"reason": reason, "count": n} for reason, n in figures.rejected_by_reason]
        )
        st.dataframe(frame, hide_index=True, width="stretch")
    else:
        st.caption("Nothing rejected.")


def restated(client: ReadClient, snapshot: Snapshot) -> None:
    """Net sales of the last closed days as first reported and as they are now, with the causes
    of the difference; a day that moved by more than THRESHOLD is marked."""
    st.subheader("Restated", anchor=False)
    try:
        days = client.restated_days(closed_days(snapshot.read_at), snapshot.source)
    except ServiceUnavailable as exc:
        st.info(f"Restatements are not available: {exc}")
        return
    st.caption(
        f"Net sales of the last {DAYS} days (UTC) as first reported when the day closed and as "
        f"they are now; :orange[▲] marks a day that moved by more than {THRESHOLD:.0%}."
    )
    if not days:
        st.caption("No sales in those days.")
        return
    frame = pd.DataFrame([_restated_row(day) for day in sorted(days, key=_newest_first)])
    st.dataframe(frame, hide_index=True, width="stretch", key="restated_table")


def _newest_first(day: RestatedDay) -> tuple[float, str]:
    return (-day.day.timestamp(), day.currency or "")


def _restated_row(day: RestatedDay) -> dict[str, str]:
    def amount(value: Decimal | None, *, signed: bool = False) -> str:
        return fmt.money(value, day.currency, signed=signed)

    causes = " · ".join(
        f"{CAUSE_LABELS.get(cause, cause)} {amount(value, signed=True)}"
        for cause, value in day.causes
    )
    return {
        "day": day.day.strftime("%a %Y-%m-%d"),
        "first reported": amount(day.first_reported)
        if day.first_reported is not None
        else "not recorded",
        "now": amount(day.now),
        "difference": amount(day.difference, signed=True) if day.difference is not None else "",
        "moved": "▲" if day.moved() else "",
        "why": causes,
    }
