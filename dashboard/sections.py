"""The sections of the live page, each drawn from one `Snapshot` (Streamlit calls only)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from dashboard import charts
from dashboard import formatting as fmt
from dashboard.data import ReadClient, ServiceUnavailable
from dashboard.model import LAG_WARNING_SECONDS, Figures, Health, Kpi, LogLag, Snapshot
from dashboard.reconciliation import reconciliation_line
from dashboard.restated import CAUSE_LABELS, DAYS, THRESHOLD, RestatedDay, closed_days

QUARANTINE_LIMIT = 20
KPI_COLUMNS = 2

_HELP = {
    "orders": "Counted orders (not test, cancelled or deleted), by order time.",
    "net_sales": "Gross sales - discounts - returns, exact, in the shop currency.",
    "aov": "Average order value: (gross sales - discounts) / orders.",
    "cart_conversion_rate": "Share of the carts created in the period that an order converted.",
    "cart_abandonment_rate": "Share of the carts created in the period that were abandoned.",
    "checkout_abandonment_rate": "Share of the checkouts started in the period that were "
    "abandoned.",
}
#: Which cohort each rate follows: (entity, what ends it well, the timeout's figure).
_COHORT = {
    "cart_conversion_rate": ("cart", "an order", "cart_abandon_after_seconds"),
    "cart_abandonment_rate": ("cart", "an order", "cart_abandon_after_seconds"),
    "checkout_abandonment_rate": ("checkout", "an order", "checkout_abandon_after_seconds"),
}


def _help(kpi: Kpi, figures: Figures) -> str:
    """The tile's tooltip: what it counts and, for a rate, when a cart or checkout is abandoned."""
    text = _HELP[kpi.name]
    if kpi.name not in _COHORT:
        return text
    entity, good_end, timeout = _COHORT[kpi.name]
    after = fmt.span(timedelta(seconds=getattr(figures, timeout)))
    text += (
        f" A {entity} counts as abandoned after {after} without activity and without "
        f"{good_end} (or when the platform says so); until then it is open."
    )
    if kpi.provisional:
        text += (
            f" Provisional: some {entity}s of the period are still open, so the rate can still "
            "change. The change against the previous period is shown once both have settled: "
            f"open {entity}s have had no time to be abandoned yet."
        )
    return text


def _tile(kpi: Kpi, compared: str, figures: Figures) -> None:
    delta = fmt.kpi_delta(kpi)
    unchanged = delta is None or kpi.delta == 0
    st.metric(
        fmt.kpi_label(kpi),
        fmt.kpi_value(kpi),
        delta=delta,
        delta_color="off" if unchanged else ("normal" if kpi.higher_is_better else "inverse"),
        delta_description=fmt.kpi_note(kpi, compared),
        help=_help(kpi, figures),
        border=True,
    )


def kpis(snapshot: Snapshot) -> None:
    """The KPI tiles, each with its change against the previous period of equal length."""
    compared = fmt.span(snapshot.window.span)
    with st.container(key="kpi-tiles"):
        for start in range(0, len(snapshot.kpis), KPI_COLUMNS):
            row = snapshot.kpis[start : start + KPI_COLUMNS]
            for column, kpi in zip(st.columns(KPI_COLUMNS), row, strict=False):
                with column:
                    _tile(kpi, compared, snapshot.current)
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
            f"Provisional: {_plural(current.carts_open, 'cart')} and "
            f"{_plural(current.checkouts_open, 'checkout')} of this period are still open; the "
            f"rates settle as they convert or time out{_timeouts(current)}"
        )
    st.caption(" · ".join(notes) if notes else "\u00a0")


def trends(snapshot: Snapshot) -> None:
    grain = snapshot.orders_trend.grain
    st.subheader("Trends", anchor=False)
    st.caption(
        f"Per {grain}, {snapshot.window.zone} · the current {grain} is still open: a lighter "
        "bar, a hollow point (what came so far)"
    )
    left, right = st.columns(2)
    with left:
        st.altair_chart(
            charts.orders_chart(snapshot.orders_trend, snapshot.read_at),
            width="stretch",
            key="orders",
        )
    with right:
        st.altair_chart(
            charts.sales_chart(snapshot.sales_trend, snapshot.read_at),
            width="stretch",
            key="sales",
        )


def funnel(snapshot: Snapshot) -> None:
    figures = snapshot.current
    st.subheader("Funnel", anchor=False, help=_FUNNEL_HELP)
    st.caption(
        f"Cart conversion {fmt.percent(figures.cart_conversion_rate)} · checkout conversion "
        f"{fmt.percent(figures.checkout_conversion_rate)}. The bars count what happened in the "
        "range, each share of the bar above; conversion follows the range's own carts and "
        "checkouts to their orders, so the two differ."
    )
    st.altair_chart(charts.funnel_chart(figures), width="stretch", key="funnel")


_FUNNEL_HELP = (
    "The bars count events of the range: carts created, checkouts started and orders placed in "
    "it; an order's share is orders / checkouts started, whichever checkout each order came from "
    "(an order may finish a checkout started before the range; a checkout of the range may still "
    "be open). Checkout conversion follows one cohort: of the checkouts started in the range, "
    "the share that an order completed. Cart conversion likewise, for carts."
)


def sources(snapshot: Snapshot) -> None:
    st.subheader("By source", anchor=False)
    frame = charts.sources_frame(snapshot.sources)
    if frame.empty:
        st.caption("No source has sent anything yet.")
        return
    st.dataframe(frame, hide_index=True, width="stretch", key="sources_table")


def _table(frame: pd.DataFrame) -> None:
    """A static table: its columns wrap to the page's width, so no column is ever hidden behind
    a scroll bar; text cells are shown literally (a table renders Markdown)."""
    shown = frame.copy()
    for column in shown.columns:
        if not pd.api.types.is_numeric_dtype(shown[column]):
            shown[column] = shown[column].map(lambda value: fmt.plain(str(value)))
    st.table(shown, hide_index=True, border="horizontal")


def health(client: ReadClient, snapshot: Snapshot) -> None:
    """Deliveries per second, freshness and delivery outcomes."""
    figures: Health = snapshot.health
    st.subheader("Ingestion health", anchor=False)
    first, second = st.columns(2)
    first.metric("Deliveries per second", fmt.rate_per_second(figures.deliveries_per_second))
    _freshness(second, figures)
    third, fourth, fifth = st.columns(3)
    third.metric("Duplicates", fmt.count(figures.duplicate))
    fourth.metric("Quarantined", fmt.count(figures.quarantined))
    fifth.metric("Rejected", fmt.count(figures.rejected))
    writer = "writer OK" if figures.writer_healthy else "writer FAILING: deliveries get 503"
    st.caption(
        f"{_pipeline_line(figures, snapshot.read_at)} · {fmt.count(figures.accepted)} accepted · "
        f"{writer} · queue {figures.queue_depth}"
    )
    if figures.log_lag is not None:
        st.caption(_log_lag(figures.log_lag))
    uncounted = fmt.not_counted(figures.not_counted, figures.not_counted_reasons)
    if uncounted:
        st.caption(
            f"{uncounted}: test, cancelled and deleted orders are stored and left out of every "
            "figure (an order can be several; Shopify's sample order is test and cancelled).",
            help=_NOT_COUNTED_HELP,
        )
    try:  # what the webhooks missed, found and filled from the store APIs
        missed = reconciliation_line(client.reconciliation(), snapshot.source)
    except ServiceUnavailable:
        missed = None
    if missed:
        st.caption(missed)


def reasons(client: ReadClient, snapshot: Snapshot) -> None:
    """Why deliveries were quarantined or rejected, and what to do: one click away, full width
    (the reasons are long), read only while open."""
    panel = st.expander("Quarantine and rejection reasons", key="reasons", on_change="rerun")
    if panel.open:
        with panel, st.container(key="reason-tables"):
            _reasons(client, snapshot.source, snapshot.health, snapshot.window.zone)


_NOT_COUNTED_HELP = (
    "ShopPulse counts an order when it is not a test order, not cancelled and not deleted "
    "(Shopify's current sales reports do the same). Such orders are stored with their "
    "deliveries; the SQL views show them in `orders` with `counted = false`."
)


def _log_lag(lag: LogLag) -> str:
    """The store's place behind the log (scale-out): caught up, or how many wait and how long."""
    if not lag.reachable:
        return "Log: UNREACHABLE — the store takes no deliveries until it reconnects"
    if lag.behind == 0:
        return "Log: caught up (every delivery the intake replicas acknowledged is stored)"
    return (
        f"Log: {fmt.count(lag.behind)} deliveries behind, the oldest waiting "
        f"{fmt.age(lag.oldest_age_seconds)}"
    )


_FRESHNESS_HELP = (
    "How current the figures are. Caught up: every stored delivery is counted, however long ago "
    "the last one arrived (a quiet store is not a lag). Otherwise: the age of the newest event "
    "counted, with a warning when events wait and it is older than {lag:g} s."
)


def _freshness(column: DeltaGenerator, figures: Health) -> None:
    """`caught up` on a quiet store; only events that wait while the figures grow old are a
    lag, shown as a warning."""
    help_text = _FRESHNESS_HELP.format(lag=LAG_WARNING_SECONDS)
    if figures.pipeline == "caught_up":
        column.metric("Freshness", "caught up", help=help_text)
        return
    value = fmt.age(figures.freshness_seconds)
    if figures.pipeline == "lagging":
        waiting = f"{_plural(figures.events_waiting or 0, 'event')} waiting"
        column.metric("Freshness", value, waiting, "orange", delta_arrow="off", help=help_text)
        return
    column.metric("Freshness", value, help=help_text)


def _timeouts(figures: Figures) -> str:
    """` (carts after 1 h without activity, checkouts after 10 min)`."""
    cart, checkout = figures.cart_abandon_after_seconds, figures.checkout_abandon_after_seconds
    return (
        f" (carts after {fmt.span(timedelta(seconds=cart))} without activity, checkouts after "
        f"{fmt.span(timedelta(seconds=checkout))})"
    )


def _plural(count: int, noun: str) -> str:
    return f"{fmt.count(count)} {noun}{'' if count == 1 else 's'}"


def _pipeline_line(figures: Health, now: datetime) -> str:
    """`last delivery 45 s ago · nothing waiting`: how long the store has been quiet, and
    whether anything waits to be counted."""
    last = figures.last_delivery_at
    line = f"last delivery {fmt.age((now - last).total_seconds())} ago" if last else "no delivery"
    if figures.pipeline == "caught_up":
        return f"{line} · nothing waiting"
    if figures.events_waiting is not None:
        return f"{line} · {_plural(figures.events_waiting, 'event')} waiting"
    return line


def _reasons(client: ReadClient, source: str | None, figures: Health, zone: str) -> None:
    try:
        quarantined = client.quarantine(QUARANTINE_LIMIT, source)
    except ServiceUnavailable as exc:
        st.info(f"The quarantine list is not available: {exc}")
        quarantined = []
    if quarantined:
        st.markdown("**Recently quarantined** (stored with the reason; what to do is below)")
        frame = pd.DataFrame(
            [
                {
                    "received": fmt.clock(item.received_at, zone),
                    "source": item.source,
                    "topic": item.topic,
                    "reason": item.reason,
                    "delivery id": item.delivery_id,
                }
                for item in quarantined
            ]
        )
        _table(frame)
        steps = Counter(item.next_step for item in quarantined if item.next_step)
        st.markdown(
            "\n".join(f"- {fmt.count(n)}: {step}" for step, n in steps.most_common()),
            help="What to do, from each delivery's reason",
        )
    else:
        st.caption("Nothing quarantined.")
    if figures.rejected_by_reason:
        st.markdown("**Rejected** (nothing stored; counted by reason)")
        frame = pd.DataFrame(
            [{"reason": reason, "count": n} for reason, n in figures.rejected_by_reason]
        )
        _table(frame)
    else:
        st.caption("Nothing rejected.")


def restated(client: ReadClient, snapshot: Snapshot) -> None:
    """Net sales of the last closed days as first reported and as they are now, with the causes
    of the difference; a day that moved by more than THRESHOLD is marked."""
    st.subheader("Restated", anchor=False)
    try:
        zone = snapshot.window.zone
        days = client.restated_days(closed_days(snapshot.read_at, zone), snapshot.source)
    except ServiceUnavailable as exc:
        st.info(f"Restatements are not available: {exc}")
        return
    st.caption(
        f"Net sales of the last {DAYS} days ({zone}) as first reported when the day closed and as "
        f"they are now; :orange[▲] marks a day that moved by more than {THRESHOLD:.0%}."
    )
    if not days:
        st.caption("No sales in those days.")
        return
    rows = [_restated_row(day, zone) for day in sorted(days, key=_newest_first)]
    frame = pd.DataFrame(rows)
    st.dataframe(frame, hide_index=True, width="stretch", key="restated_table")


def _newest_first(day: RestatedDay) -> tuple[float, str]:
    return (-day.day.timestamp(), day.currency or "")


def _restated_row(day: RestatedDay, zone: str) -> dict[str, str]:
    def amount(value: Decimal | None, *, signed: bool = False) -> str:
        return fmt.money(value, day.currency, signed=signed)

    causes = " · ".join(
        f"{CAUSE_LABELS.get(cause, cause)} {amount(value, signed=True)}"
        for cause, value in day.causes
    )
    return {
        "day": day.day.astimezone(ZoneInfo(zone)).strftime("%a %Y-%m-%d"),
        "first reported": amount(day.first_reported)
        if day.first_reported is not None
        else "not recorded",
        "now": amount(day.now),
        "difference": amount(day.difference, signed=True) if day.difference is not None else "",
        "moved": "▲" if day.moved() else "",
        "why": causes,
    }
