"""The dashboard's values without any service: windows, KPIs, the rate meter and formatting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from dashboard import charts
from dashboard import formatting as fmt
from dashboard.model import (
    MONEY_FIELDS,
    RATES,
    Figures,
    Kpi,
    Point,
    RateMeter,
    SourceRow,
    build_health,
    build_kpis,
    fill_buckets,
    list_sources,
)
from dashboard.time_range import TimeRange, grain_for
from metrics.definitions import FUNNEL_COUNTS

NOW = datetime(2026, 3, 14, 15, 9, 26, 535000, tzinfo=UTC)


def figures(**changes: Any) -> Figures:
    """A window's figures as the API would describe them, with `changes` on top."""
    body: dict[str, Any] = {
        "source": None,
        "from": "2026-03-14T14:10:00+00:00",
        "to": "2026-03-14T15:10:00+00:00",
        "orders": 0,
        "currency": None,
        **dict.fromkeys(MONEY_FIELDS),
        "by_currency": [],
        "orders_without_amounts": 0,
        **dict.fromkeys(FUNNEL_COUNTS, 0),
        **dict.fromkeys(RATES),
        "provisional": False,
        "as_of": None,
        "watermark": None,
        "freshness_seconds": None,
        "events_folded_through": 0,
        "definition_versions": {},
        "cart_abandon_after_seconds": 3600.0,
        "checkout_abandon_after_seconds": 600.0,
    }
    body.update(changes)
    return Figures.from_json(body)


def money(currency: str | None, orders: int, net: str, aov: str | None) -> dict[str, Any]:
    return {
        "currency": currency,
        "orders": orders,
        "gross_sales": net,
        "discounts": "0.00",
        "returns": "0.00",
        "net_sales": net,
        "aov": aov,
    }


def test_last_range_ends_with_the_current_minute_and_the_previous_one_is_adjacent() -> None:
    window = TimeRange.last(timedelta(minutes=15), NOW)
    assert window.end == datetime(2026, 3, 14, 15, 10, tzinfo=UTC)
    assert window.start == datetime(2026, 3, 14, 14, 55, tzinfo=UTC)
    previous = window.previous()
    assert (previous.start, previous.end) == (window.start - timedelta(minutes=15), window.start)
    assert len(window.buckets()) == 15
    assert window.buckets()[-1] == datetime(2026, 3, 14, 15, 9, tzinfo=UTC)


@pytest.mark.parametrize(
    ("span", "grain", "buckets"),
    [
        (timedelta(minutes=15), "minute", 15),
        (timedelta(hours=1), "minute", 60),
        (timedelta(hours=24), "hour", 25),  # the window starts mid-hour: 25 partial hours
        (timedelta(days=7), "hour", 169),
        (timedelta(days=30), "day", 31),
    ],
)
def test_the_grain_follows_the_range(span: timedelta, grain: str, buckets: int) -> None:
    window = TimeRange.last(span, NOW)
    assert grain_for(span) == window.grain == grain
    assert len(window.buckets()) == buckets


def test_a_custom_range_must_run_forwards() -> None:
    with pytest.raises(ValueError, match="before"):
        TimeRange.between(NOW, NOW - timedelta(hours=1))
    window = TimeRange.between(NOW - timedelta(hours=2), NOW)
    assert window.span == timedelta(hours=2)


def test_kpis_compare_with_the_previous_period_in_the_main_currency() -> None:
    current = figures(
        orders=3,
        by_currency=[money("EUR", 1, "10.00", "10.00"), money("USD", 2, "300.50", "150.25")],
        carts_created=4,
        carts_converted=1,
        carts_open=2,
        carts_abandoned=1,
        cart_conversion_rate=0.25,
        cart_abandonment_rate=0.25,
        checkouts_started=2,
        checkouts_abandoned=1,
        checkouts_completed=1,
        checkout_abandonment_rate=0.5,
        provisional=True,
    )
    previous = figures(
        orders=1,
        by_currency=[money("USD", 1, "99.99", "99.99")],
        carts_created=2,
        carts_converted=1,
        carts_abandoned=1,
        cart_conversion_rate=0.5,
        cart_abandonment_rate=0.5,
    )
    orders, net, aov, conversion, abandonment, checkout = build_kpis(current, previous)
    assert (orders.value, orders.delta) == (3, 2)
    assert net.currency == "USD"  # the currency with the most orders
    assert (net.value, net.delta) == (Decimal("300.50"), Decimal("200.51"))
    assert (aov.value, aov.delta) == (Decimal("150.25"), Decimal("50.26"))
    assert conversion.value == 0.25 and conversion.previous == 0.5
    assert conversion.provisional and abandonment.provisional and not checkout.provisional
    assert not abandonment.higher_is_better and conversion.higher_is_better
    assert checkout.previous is None and checkout.delta is None
    assert fmt.kpi_value(net) == "300.50" and fmt.kpi_label(net) == "Net sales (USD)"
    assert fmt.kpi_delta(net) == "+200.51"  # the label names the currency
    # two carts of this period are still open: no change against the settled previous period
    assert conversion.delta is None and abandonment.delta is None
    assert fmt.kpi_delta(conversion) is None
    assert fmt.kpi_value(abandonment) == "25.0%"
    assert fmt.kpi_label(abandonment) == "Cart abandonment"
    assert fmt.kpi_note(abandonment, "1 h") == "provisional · not compared yet"
    assert fmt.kpi_note(checkout, "15 min") == "vs previous 15 min"


def test_a_provisional_rate_is_not_set_against_a_settled_one() -> None:
    """The current hour's open carts cannot be abandoned yet (the 60-minute timeout): a 0 %
    abandonment against last hour's 69.4 % is no fall, and no change is shown."""
    current = figures(carts_created=5, carts_open=5, cart_abandonment_rate=0.0)
    settled = figures(carts_created=36, carts_abandoned=25, cart_abandonment_rate=25 / 36)
    abandonment = build_kpis(current, settled)[4]
    assert abandonment.unsettled and abandonment.delta is None
    assert fmt.kpi_delta(abandonment) is None
    # once both periods have settled the change is shown, in percentage points
    current = figures(carts_created=5, carts_abandoned=1, cart_abandonment_rate=0.2)
    abandonment = build_kpis(current, settled)[4]
    assert not abandonment.unsettled and fmt.kpi_delta(abandonment) == "-49.4 pp"
    assert fmt.kpi_note(abandonment, "1 h") == "vs previous 1 h"
    # a previous period still holding open carts is not alike either
    unsettled_before = figures(carts_created=2, carts_open=1, cart_abandonment_rate=0.5)
    assert build_kpis(current, unsettled_before)[4].delta is None


def test_without_sales_net_sales_is_zero_against_the_previous_period_and_aov_unknown() -> None:
    previous = figures(orders=2, by_currency=[money("USD", 2, "50.00", "25.00")])
    _, net, aov, *_ = build_kpis(figures(), previous)
    assert (net.value, net.previous, net.delta) == (Decimal(0), Decimal("50.00"), Decimal(-50))
    assert aov.value is None and aov.delta is None
    assert fmt.kpi_value(aov) == fmt.DASH and fmt.kpi_delta(aov) is None
    _, net, _, *_ = build_kpis(figures(), figures())
    assert net.value is None and fmt.kpi_value(net) == fmt.DASH


def test_a_kpi_delta_needs_both_sides() -> None:
    assert Kpi("orders", "Orders", "count", 5, None).delta is None
    assert Kpi("orders", "Orders", "count", 5, 7).delta == -2


def test_rate_meter_measures_deliveries_per_second_over_a_bounded_window() -> None:
    meter = RateMeter(window_seconds=10.0, max_samples=16)
    assert meter.add(100.0, 50) is None  # one sample: no rate yet
    assert meter.add(102.0, 70) == 10.0
    assert meter.add(104.0, 70) == pytest.approx(20 / 4)
    for second in range(106, 400, 2):  # hours of refreshes keep at most 16 samples
        rate = meter.add(float(second), 70 + (second - 104) * 3)
    assert rate == pytest.approx(3.0)
    assert len(meter._samples) <= 16
    assert meter.add(402.0, 5) is None  # the counts went back (a new service): start again


def test_missing_buckets_are_zero_per_currency() -> None:
    buckets = [NOW.replace(minute=m, second=0, microsecond=0) for m in (1, 2, 3)]
    points = [Point(buckets[1], Decimal("5.00"), "USD"), Point(buckets[2], Decimal("1"), "EUR")]
    filled = fill_buckets(points, buckets, Decimal(0))
    assert [(p.currency, p.value) for p in filled] == [
        ("EUR", Decimal(0)),
        ("EUR", Decimal(0)),
        ("EUR", Decimal(1)),
        ("USD", Decimal(0)),
        ("USD", Decimal("5.00")),
        ("USD", Decimal(0)),
    ]


def test_sources_busiest_first_without_the_unknown_bucket() -> None:
    stats = {
        "sources": {
            "_unknown": {"rejected": 90},
            "quiet": {"accepted": 1},
            "busy": {"accepted": 5, "duplicate": 2},
        }
    }
    assert list_sources(stats) == ["busy", "quiet"]


def test_health_sums_rejection_reasons_over_sources() -> None:
    stats = {
        "totals": {"accepted": 7, "duplicate": 2, "quarantined": 1, "rejected": 4},
        "last_delivery_at": "2026-03-14T15:09:00+00:00",
        "sources": {
            "a": {"accepted": 7, "rejected": 1, "rejected_by_reason": {"invalid_signature": 1}},
            "_unknown": {"rejected": 3, "rejected_by_reason": {"unknown_source": 3}},
        },
        "queue_depth": 0,
        "writer_healthy": True,
    }
    health = build_health(stats, figures(freshness_seconds=1.5), None, 2.0)
    assert (health.accepted, health.duplicate, health.quarantined, health.rejected) == (7, 2, 1, 4)
    assert health.rejected_by_reason == (("unknown_source", 3), ("invalid_signature", 1))
    assert health.freshness_seconds == 1.5
    one = build_health(stats, figures(), "a", None)
    assert (one.accepted, one.rejected, one.rejected_by_reason) == (
        7,
        1,
        (("invalid_signature", 1),),
    )


def test_health_carries_the_stored_but_not_counted_orders() -> None:
    stats = {
        "totals": {"accepted": 3},
        "sources": {
            "a": {"accepted": 2, "not_counted": {"orders": 1, "test": 1, "cancelled": 1}},
            "b": {"accepted": 1, "not_counted": {"orders": 1, "deleted": 1}},
        },
        "not_counted": {"orders": 2, "test": 1, "cancelled": 1, "deleted": 1},
    }
    every = build_health(stats, figures(), None, None)
    assert every.not_counted == 2
    assert every.not_counted_reasons == (("test", 1), ("cancelled", 1), ("deleted", 1))
    one = build_health(stats, figures(), "a", None)
    assert (one.not_counted, one.not_counted_reasons) == (1, (("test", 1), ("cancelled", 1)))
    assert fmt.not_counted(one.not_counted, one.not_counted_reasons) == (
        "Stored but not counted: 1 order (1 test · 1 cancelled)"
    )
    assert fmt.not_counted(every.not_counted, every.not_counted_reasons) == (
        "Stored but not counted: 2 orders (1 test · 1 cancelled · 1 deleted)"
    )
    older = build_health({"totals": {}, "sources": {}}, figures(), None, None)  # an older service
    assert (older.not_counted, fmt.not_counted(0, ())) == (0, None)


@pytest.mark.parametrize(
    ("amount", "currency", "signed", "shown"),
    [
        (Decimal("1234.5"), "USD", False, "1,234.50 USD"),
        (Decimal("0.005"), "USD", False, "0.01 USD"),  # half up, exactly
        (Decimal("-0.004"), "USD", True, "+0.00 USD"),  # never "-0.00"
        (Decimal("-12.5"), "EUR", True, "-12.50 EUR"),
        (Decimal("1000.4"), "JPY", False, "1,000 JPY"),
        (None, "USD", False, fmt.DASH),
    ],
)
def test_money_is_shown_exactly_with_its_currency(
    amount: Decimal | None, currency: str, signed: bool, shown: str
) -> None:
    assert fmt.money(amount, currency, signed=signed) == shown


def test_rates_ages_and_spans_read_naturally() -> None:
    assert fmt.percent(0.41256) == "41.3%"
    assert fmt.percent(None) == fmt.DASH
    assert fmt.points(0.025) == "+2.5 pp"
    assert [fmt.age(s) for s in (0.42, 12.9, 185, 7260, 90000)] == [
        "0.4 s",
        "12 s",
        "3 min 5 s",
        "2 h 1 min",
        "1 d 1 h",
    ]
    spans = [timedelta(minutes=15), timedelta(hours=1), timedelta(days=1), timedelta(days=7)]
    assert [fmt.span(s) for s in spans] == ["15 min", "1 h", "24 h", "7 d"]
    assert fmt.span(timedelta(minutes=90)) == "1 h 30 min"


def test_funnel_shows_each_step_against_the_one_before() -> None:
    frame = charts.funnel_frame(figures(carts_created=10, checkouts_started=4, orders=3))
    assert list(frame["count"]) == [10, 4, 3]
    assert list(frame["label"]) == ["10", "4 (40.0%)", "3 (75.0%)"]


def test_source_table_keeps_money_exact_per_currency() -> None:
    row = SourceRow(
        "a",
        figures(
            orders=2, by_currency=[money("USD", 1, "10.005", "10.005"), money("EUR", 1, "3", "3")]
        ),
        accepted=5,
        duplicate=1,
        quarantined=0,
        rejected=2,
    )
    frame = charts.sources_frame((row,))
    assert frame.loc[0, "net sales"] == "10.01 USD · 3.00 EUR"
    assert frame.loc[0, "rejected"] == 2


@pytest.mark.parametrize(
    ("stored", "folded", "queue", "freshness", "state"),
    [
        (40, 40, 0, 45.0, "caught_up"),  # a quiet store: old but nothing waits
        (41, 40, 0, 45.0, "lagging"),  # one event waits and the figures are 45 s old
        (400, 380, 3, 0.4, "busy"),  # events wait, but the figures are fresh
        (None, 40, 0, 45.0, "unknown"),  # a service that does not say
        (40, 40, 2, 45.0, "lagging"),  # deliveries queue for the writer
    ],
)
def test_freshness_tells_a_quiet_store_from_a_lag(
    stored: int | None, folded: int, queue: int, freshness: float, state: str
) -> None:
    stats: dict[str, Any] = {"totals": {}, "sources": {}, "queue_depth": queue}
    if stored is not None:
        stats["events_stored_through"] = stored
    current = figures(events_folded_through=folded, freshness_seconds=freshness)
    health = build_health(stats, current, None, None)
    assert health.pipeline == state
    assert health.events_waiting == (None if stored is None else stored - folded)


def test_table_text_is_shown_literally() -> None:
    """Streamlit renders Markdown in a table's cells: a sender's topic never becomes a link."""
    hostile = "[click](http://example.com) *x* :red[y] $z$ <b>"
    escaped = fmt.plain(hostile)
    assert all(escaped[i - 1] == "\\" for i, c in enumerate(escaped) if c in "[]()*:$<>")
    assert escaped.replace("\\", "") == hostile
