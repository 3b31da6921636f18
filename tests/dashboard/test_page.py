"""The Streamlit page (AppTest) against a real service: the tiles show what the API says.

AppTest runs the script in this process; the live fragment's timer does not fire here, so each
refresh is an explicit `at.run()`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from streamlit.testing.v1 import AppTest

import dashboard
from dashboard import formatting as fmt
from ingest.quarantine import UNSUBSCRIBE
from tests.conftest import fixture_json
from tests.dashboard.reading import api_figures, expected_tiles, kpi_tiles
from tests.dashboard.store import Store, wait_for
from tests.e2e.server import ServiceProcess
from tests.helpers.ports import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

APP = str(Path(dashboard.__file__).parent / "app.py")


def app_for(url: str, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("SHOPPULSE_API_URL", url)
    monkeypatch.delenv("SHOPPULSE_API_TOKEN", raising=False)
    return AppTest.from_file(APP, default_timeout=30)


def tiles(at: AppTest) -> dict[str, str]:
    """KPI name -> the value the page shows."""
    return kpi_tiles((metric.label, metric.value) for metric in at.metric)


@pytest.fixture
def page(service: ServiceProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[AppTest]:
    at = app_for(service.base_url, monkeypatch)
    at.run()
    assert not at.exception, at.exception
    yield at


def test_tiles_show_the_api_figures_and_follow_new_orders(
    page: AppTest, http: httpx.Client
) -> None:
    shop = Store(http, "acme")
    span = timedelta(hours=1)  # the page's default range
    start = api_figures(http, span)
    shop.cart("page-cart-1")
    shop.cart("page-cart-2")
    shop.order("120.00", "20.00", cart_token="page-cart-1")
    before = wait_for(
        lambda: api_figures(http, span),
        lambda body: (
            (body["carts_created"], body["carts_converted"], body["orders"])
            == (start["carts_created"] + 2, start["carts_converted"] + 1, start["orders"] + 1)
        ),
    )
    page.run()
    assert not page.exception, page.exception
    assert tiles(page) == expected_tiles(api_figures(http, span))
    labels = [metric.label for metric in page.metric]
    assert f"Net sales ({before['currency']})" in labels
    conversion = next(m for m in page.metric if m.label == "Cart conversion")
    # page-cart-2 is open: the rate is provisional and not set against the previous hour
    assert conversion.proto.delta_description == "provisional · not compared yet"
    assert not conversion.delta
    assert "counts as abandoned after 1 h without activity" in conversion.proto.help
    checkout = next(m for m in page.metric if m.label == "Checkout abandonment")
    assert "counts as abandoned after 10 min without activity" in checkout.proto.help
    assert any(
        "Provisional:" in caption.value
        and "time out (carts after 1 h without activity, checkouts after 10 min)" in caption.value
        for caption in page.caption
    )

    shop.order("80.00", "0.00")
    shop.order("19.99", "0.00")
    after = wait_for(
        lambda: api_figures(http, span), lambda body: body["orders"] == before["orders"] + 2
    )
    page.run()
    assert not page.exception, page.exception
    shown = tiles(page)
    assert shown == expected_tiles(after)
    assert shown["Orders"] == fmt.count(before["orders"] + 2)
    orders_tile = next(m for m in page.metric if m.label == "Orders")
    assert orders_tile.delta.startswith("+")
    health = {m.label: m.value for m in page.metric}
    assert int(health["Duplicates"]) >= 0
    # every delivery is counted and nothing queues: caught up, however old the last one is
    freshness = next(m for m in page.metric if m.label == "Freshness")
    assert freshness.value == "caught up", freshness.value
    assert any(
        re.match(r"last delivery [0-9.]+ s ago · nothing waiting · ", caption.value)
        for caption in page.caption
    )


def test_source_filter_and_quarantine_reasons(page: AppTest, http: httpx.Client) -> None:
    shop = Store(http, "shop-d")
    shop.order("33.33", "3.33")
    shop.unusable()
    wait_for(lambda: api_figures(http, timedelta(hours=1), "shop-d"), lambda b: b["orders"] == 1)
    page.run()  # the filter offers the new source
    page.selectbox(key="source").set_value("shop-d").run()
    assert not page.exception, page.exception
    shown = tiles(page)
    assert shown["Orders"] == "1" and shown["Net sales"] == "30.00" and shown["AOV"] == "30.00"
    health = {m.label: m.value for m in page.metric}
    assert (health["Quarantined"], health["Rejected"]) == ("1", "0")

    assert not any("Recently quarantined" in m.value for m in page.markdown)
    page.session_state["reasons"] = True  # open "Quarantine and rejection reasons"
    page.run()
    assert not page.exception, page.exception
    assert any("Recently quarantined" in m.value for m in page.markdown)
    table = next(frame.value for frame in page.table if "topic" in frame.value.columns)
    # shown literally: the table renders Markdown, so punctuation is escaped
    assert list(table["reason"]) == [fmt.plain("unknown topic 'products/update'")]
    assert list(table["source"]) == [fmt.plain("shop-d")]
    received = str(next(iter(table["received"]))).replace("\\", "")  # unescaped
    assert re.search(r" (CET|CEST)$", received), received  # on the display zone's clock
    assert any(m.value == f"- 1: {UNSUBSCRIBE}" for m in page.markdown)
    assert not any("fixing the mapping" in m.value for m in page.markdown)

    page.radio(key="range").set_value("Last 15 minutes").run()
    assert not page.exception, page.exception
    assert any("15 min from" in caption.value for caption in page.caption)
    assert tiles(page)["Orders"] == "1"


def test_unreachable_service_shows_a_message_then_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    at = app_for(f"http://127.0.0.1:{port}", monkeypatch)
    at.run()
    assert not at.exception, at.exception
    assert [w.value for w in at.warning if "not reachable" in w.value], at.warning
    assert not at.metric

    token = "dashboard-test-token"
    sources = {"acme": ("shopify", "secret")}
    env = {"SHOPPULSE_API_TOKEN": token}
    with ServiceProcess.for_sources(tmp_path, sources, port=port, env=env):
        at.run()  # the next refresh: the service answers now, but wants its token
        assert not at.exception, at.exception
        assert [w.value for w in at.warning if "SHOPPULSE_API_TOKEN" in w.value], at.warning
        assert not at.metric

        monkeypatch.setenv("SHOPPULSE_API_TOKEN", token)
        at.run()
        assert not at.exception, at.exception
        assert not at.warning
        assert tiles(at)["Orders"] == "0"


def test_the_funnel_says_how_its_shares_differ_from_conversion(page: AppTest) -> None:
    funnel = next(h for h in page.subheader if h.value == "Funnel")
    assert "whichever checkout each order came from" in funnel.proto.help
    assert any(
        "conversion follows the range's own carts and checkouts" in caption.value
        for caption in page.caption
    )


def test_today_on_the_display_zones_clock(page: AppTest) -> None:
    """The service's display zone is Europe/Berlin: 'Today' begins at Berlin's midnight and is
    compared with yesterday up to the same time; times and buckets are on Berlin's clock."""
    assert any(
        "Days, hours and times in Europe/Berlin (the display time zone)" in caption.value
        for caption in page.sidebar.caption
    )
    page.radio(key="range").set_value("Today").run()
    assert not page.exception, page.exception
    berlin = ZoneInfo("Europe/Berlin")
    midnight = datetime.combine(datetime.now(berlin).date(), time(0, 0), berlin)
    header = next(c.value for c in page.caption if c.value.startswith(":green[●] Live"))
    assert f"from {fmt.clock(midnight, 'Europe/Berlin')}" in header, header
    assert "compared with the same time the day before" in header
    assert re.search(r" (CET|CEST) ", header), header
    assert any("Europe/Berlin · the current" in caption.value for caption in page.caption)


def test_stored_but_not_counted_orders_are_explained(page: AppTest, http: httpx.Client) -> None:
    """Shopify's sample orders/create is a test order and cancelled: 0 orders, and the health
    section says why."""
    shop = Store(http, "sample-shop")
    shop.send("orders/create", fixture_json("shopify", "orders_create.json"))
    wait_for(
        lambda: http.get("/api/v1/ingest/stats").json()["sources"]["sample-shop"],
        lambda body: body.get("not_counted", {}).get("orders") == 1,
    )
    page.run()
    page.selectbox(key="source").set_value("sample-shop").run()
    assert not page.exception, page.exception
    assert tiles(page)["Orders"] == "0"
    notes = [c.value for c in page.caption if c.value.startswith("Stored but not counted")]
    assert notes and notes[0].startswith("Stored but not counted: 1 order (1 test · 1 cancelled)")
