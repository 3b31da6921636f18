"""A real browser: headless Chromium (the system's, driven by Playwright) on the live dashboard.

The service runs on 127.0.0.1; `shoppulse dashboard --db <the service's database>` finds it by
itself and serves the page. The test checks the KPI tiles against the API, sends new signed
orders, waits for the tiles to follow without a page reload, and checks that no tile ever
disappeared or faded while the page refreshed. A screenshot is kept in test-artifacts/.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.dashboard.reading import api_figures, expected_tiles, kpi_tiles
from tests.dashboard.store import Store, wait_for
from tests.e2e.server import ServiceProcess, service_env
from tests.helpers.ports import free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(120)]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SPAN = timedelta(hours=1)  # the page's default range

#: In the page: sample every 50 ms how many metric tiles exist and the lowest opacity of any
#: element, to catch a refresh that blanks or fades the page.
_SAMPLER = """() => {
  window.__samples = [];
  window.__sampler = setInterval(() => {
    let lowest = 1;
    for (const el of document.querySelectorAll('[data-testid="stElementContainer"]')) {
      lowest = Math.min(lowest, parseFloat(getComputedStyle(el).opacity));
    }
    window.__samples.push([document.querySelectorAll('[data-testid="stMetric"]').length, lowest]);
  }, 50);
}"""


_SAMPLES = "() => { clearInterval(window.__sampler); return window.__samples; }"
_METRIC = '[data-testid="stMetricValue"]'


@pytest.fixture
def dashboard_url(service: ServiceProcess, tmp_path: Path) -> Iterator[str]:
    """`shoppulse dashboard --db <db>` on a free port of 127.0.0.1 (found via discovery)."""
    port = free_port()
    log_path = tmp_path / "dashboard.log"
    command = [
        sys.executable,
        "-c",
        "from shoppulse.cli import main; main()",
        "dashboard",
        "--db",
        str(service.db),
        "--port",
        str(port),
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=service_env(), stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            assert process.poll() is None, log_path.read_text(errors="replace")
            try:
                return httpx.get(f"{url}/_stcore/health", timeout=1.0).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(healthy, bool, timeout=45)
        said = " ".join(log_path.read_text(errors="replace").split())  # the console wraps lines
        assert f"reading the service at {service.base_url} (from the service running on" in said
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(15)


def open_dashboard(playwright: Any, url: str, width: int, height: int) -> tuple[Any, Any]:
    """Headless Chromium on the dashboard at this window size, once its tiles are drawn."""
    browser = playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )
    try:
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(url, wait_until="domcontentloaded")
        page.wait_for_selector(_METRIC, state="attached", timeout=45_000)
    except BaseException:
        browser.close()
        raise
    return browser, page


def page_tiles(page: Any) -> dict[str, str]:
    shown = []
    metrics = page.locator('[data-testid="stMetric"]')
    for index in range(metrics.count()):
        metric = metrics.nth(index)
        label = metric.locator('[data-testid="stMetricLabel"]').inner_text().strip()
        value = metric.locator('[data-testid="stMetricValue"]').inner_text().strip()
        shown.append((label, value))
    return kpi_tiles(shown)


def matches_api(page: Any, http: httpx.Client) -> tuple[dict[str, str], dict[str, str]]:
    return page_tiles(page), expected_tiles(api_figures(http, SPAN))


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium: run `make browser`")
def test_browser_shows_the_api_figures_and_follows_new_orders(
    dashboard_url: str, http: httpx.Client
) -> None:
    from playwright.sync_api import sync_playwright

    shop = Store(http, "acme")
    start = api_figures(http, SPAN)
    shop.cart("browser-cart")
    shop.order("64.00", "4.00", cart_token="browser-cart")
    wait_for(
        lambda: api_figures(http, SPAN),
        lambda body: (
            (body["orders"], body["carts_converted"])
            == (start["orders"] + 1, start["carts_converted"] + 1)
        ),
    )

    with sync_playwright() as playwright:
        browser, page = open_dashboard(playwright, dashboard_url, 1440, 1150)
        try:
            before = wait_for(
                lambda: matches_api(page, http), lambda pair: pair[0] == pair[1], timeout=20
            )[1]

            page.evaluate(_SAMPLER)
            for gross in ("100.00", "250.00", "9.99"):
                shop.order(gross, "0.00")
            orders = int(before["Orders"].replace(",", "")) + 3
            after = wait_for(
                lambda: matches_api(page, http),
                lambda pair: pair[0] == pair[1] and pair[1]["Orders"] == f"{orders:,d}",
                timeout=30,
            )[0]
            assert after["Net sales"] != before["Net sales"]
            time.sleep(2.5)  # at least one more refresh under the sampler
            samples = page.evaluate(
                "() => { clearInterval(window.__sampler); return window.__samples; }"
            )
            assert len(samples) > 20
            assert {count for count, _ in samples} == {11}, "a refresh removed tiles"
            assert min(opacity for _, opacity in samples) == 1, "a refresh faded the page"

            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
        finally:
            browser.close()


#: Text the page cuts short: an element (or one inside it) wider than its box and clipped
#: (ellipsis or hidden overflow).
_CUT_TEXT = """() => {
  const selector = [
    '[data-testid="stMetricLabel"]', '[data-testid="stMetricValue"]',
    '[data-testid="stMetricDelta"]', '[data-testid="stCaptionContainer"]',
    '[data-testid="stMarkdownContainer"]', '[data-testid="stTable"] th',
    '[data-testid="stTable"] td', '[data-testid="stExpander"] summary',
  ].join(', ');
  const cut = [];
  for (const el of document.querySelectorAll(selector)) {
    for (const node of [el, ...el.querySelectorAll('*')]) {
      const style = getComputedStyle(node);
      const clips = style.textOverflow === 'ellipsis' || style.overflowX === 'hidden'
        || style.overflow === 'hidden';
      if (clips && node.scrollWidth > node.clientWidth + 1) {
        cut.push(el.innerText.trim().slice(0, 80));
        break;
      }
    }
  }
  return cut;
}"""


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium: run `make browser`")
def test_nothing_is_cut_at_1400_and_800_px(dashboard_url: str, http: httpx.Client) -> None:
    """Every tile label, value and note, every caption and the quarantine reasons show whole on
    a laptop screen and a narrow window. Screenshots: test-artifacts/dashboard-<width>.png."""
    from playwright.sync_api import sync_playwright

    shop = Store(http, "acme")
    shop.cart("fit-cart")
    shop.checkout("fit-checkout", "fit-cart")
    shop.order("1234.56", "4.00", cart_token="fit-cart")
    shop.unusable()
    wait_for(lambda: api_figures(http, SPAN), lambda body: body["orders"] >= 1)

    with sync_playwright() as playwright:
        # tall enough that the whole page shows (it scrolls inside, not as a document)
        browser, page = open_dashboard(playwright, dashboard_url, 1400, 2400)
        try:
            page.get_by_text("Quarantine and rejection reasons").click()
            page.wait_for_selector('[data-testid="stTable"]', timeout=20_000)
            ARTIFACTS.mkdir(exist_ok=True)
            cut: dict[int, list[str]] = {}
            for width in (1400, 800):
                page.set_viewport_size({"width": width, "height": 2400})
                time.sleep(2.5)  # a refresh at this width
                page.screenshot(path=str(ARTIFACTS / f"dashboard-{width}.png"))
                cut[width] = page.evaluate(_CUT_TEXT)
                reasons = page.locator('[data-testid="stTable"]').first
                assert "unknown topic 'products/update'" in reasons.inner_text()
                box, table = reasons.bounding_box(), reasons.locator("table").bounding_box()
                assert box and table and table["width"] <= box["width"] + 1, "the table scrolls"
            assert cut == {1400: [], 800: []}
        finally:
            browser.close()
