"""The ShopPulse dashboard: live KPIs, trends, funnel, sources and ingestion health.

Run it with `shoppulse dashboard`, or `streamlit run dashboard/app.py -- --api URL` (the API URL
may also come from SHOPPULSE_API_URL). The page reads only the service's HTTP read API, through
`dashboard.data`. The filters rerun the page; the live part below them is a fragment that reruns
on its own every `REFRESH_SECONDS`, so the page never reloads as a whole.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import streamlit as st

from dashboard import formatting as fmt
from dashboard import sections
from dashboard.data import (
    DEFAULT_API_URL,
    REFRESH_SECONDS,
    ReadClient,
    ServiceUnavailable,
    load_snapshot,
)
from dashboard.model import RateMeter, Snapshot, list_sources
from dashboard.time_range import CALENDAR_RANGES, CUSTOM_RANGE, RANGES, TimeRange, Zones

log = logging.getLogger("shoppulse.dashboard")

ALL_SOURCES = "All sources"
DEFAULT_RANGE = "Last hour"


def api_url(argv: list[str], environ: Mapping[str, str]) -> str:
    """`--api URL` after `--` on the command line, else $SHOPPULSE_API_URL, else the default.

    The API token, when the service needs one, comes from $SHOPPULSE_API_TOKEN (never argv).
    """
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--api", default=None)
    known, _ = parser.parse_known_args(argv)
    return str(known.api or environ.get("SHOPPULSE_API_URL") or DEFAULT_API_URL).rstrip("/")


@st.cache_resource(show_spinner=False)
def _client(base_url: str, token: str | None) -> ReadClient:
    """One HTTP client (connection pool) per service URL for the whole dashboard process."""
    return ReadClient(base_url, token=token)


def _known_sources(client: ReadClient) -> list[str]:
    """Sources for the filter: what the service lists now, else what this session saw last."""
    try:
        sources = list_sources(client.stats())
    except ServiceUnavailable:
        return list(st.session_state.get("known_sources", ()))
    st.session_state["known_sources"] = tuple(sources)
    return sources


def _zones(client: ReadClient) -> Zones:
    """Each source's time zone and the display zone: from the service, else as last seen."""
    try:
        zones = client.zones()
    except ServiceUnavailable:
        seen: Zones = st.session_state.get("zones", Zones())
        return seen
    st.session_state["zones"] = zones
    return zones


def _sidebar(client: ReadClient) -> tuple[str | None, TimeRange | str, str]:
    """The filters; returns the source (None: all), a range name or a custom TimeRange, and the
    time zone the range and the buckets follow (the source's, else the display zone)."""
    st.sidebar.header("Filters")
    options = [ALL_SOURCES, *_known_sources(client)]
    chosen = st.sidebar.selectbox("Source", options, key="source")
    names = [*RANGES, *CALENDAR_RANGES, CUSTOM_RANGE]
    range_name = st.sidebar.radio(
        "Time range", names, index=names.index(DEFAULT_RANGE), key="range"
    )
    source = None if chosen in (None, ALL_SOURCES) else str(chosen)
    zone = _zones(client).of(source)
    if range_name != CUSTOM_RANGE:
        return source, str(range_name), zone
    local = ZoneInfo(zone)
    today = datetime.now(local).date()
    start_day = st.sidebar.date_input(f"From ({zone})", value=today - timedelta(days=1))
    start_time = st.sidebar.time_input("From time", value=time(0, 0))
    end_day = st.sidebar.date_input(f"To ({zone})", value=today)
    end_time = st.sidebar.time_input("To time", value=time(23, 59))
    try:
        if not isinstance(start_day, date) or not isinstance(end_day, date):
            raise ValueError("choose both days")
        window = TimeRange.between(
            datetime.combine(start_day, start_time or time(0, 0), local),
            datetime.combine(end_day, end_time or time(0, 0), local),
            zone,
        )
    except ValueError:
        st.sidebar.error("Choose a start before the end.")
        return source, DEFAULT_RANGE, zone
    return source, window, zone


def _meter(source: str | None) -> RateMeter:
    """This session's delivery-rate meter (a new one when the source filter changes)."""
    state = st.session_state
    if "meter" not in state or state.get("meter_source") != (source or ""):
        state["meter"] = RateMeter()
        state["meter_source"] = source or ""
    meter: RateMeter = state["meter"]
    return meter


def _window(choice: TimeRange | str, zone: str) -> TimeRange:
    if isinstance(choice, TimeRange):
        return choice
    now = datetime.now(UTC)
    if choice in CALENDAR_RANGES:
        return TimeRange.since(CALENDAR_RANGES[choice], now, zone)
    return TimeRange.last(RANGES[choice], now, zone)


@st.fragment(run_every=REFRESH_SECONDS)
def live(client: ReadClient, source: str | None, choice: TimeRange | str, zone: str) -> None:
    """The part of the page that refreshes itself (a fragment: the rest of the page stays)."""
    window = _window(choice, zone)
    try:
        snapshot = load_snapshot(client, window, source, _meter(source))
    except ServiceUnavailable as exc:
        if exc.reachable:
            headline, hint = "The ShopPulse service did not give the figures.", ""
        else:
            headline = "The ShopPulse service is not reachable."
            hint = " Is it running? Start it with `shoppulse serve` (or `make run`)."
        st.warning(
            f"**{headline}** {exc}.\n\nRetrying every {REFRESH_SECONDS:g} s: this page "
            f"recovers by itself once the service answers.{hint}",
            icon=":material/cloud_off:",
        )
        return
    seen = tuple(row.source for row in snapshot.sources)
    if source is None and set(seen) - set(st.session_state.get("known_sources", ())):
        st.session_state["known_sources"] = seen
        st.rerun(scope="app")  # a new source: offer it in the filter
    try:
        _draw(client, snapshot)
    except Exception as exc:  # the page shows a message and keeps refreshing, never a traceback
        log.exception("drawing the dashboard failed")
        st.error(f"The dashboard could not draw these figures ({type(exc).__name__}); retrying.")


def _draw(client: ReadClient, snapshot: Snapshot) -> None:
    window, previous = snapshot.window, snapshot.window.previous()
    span, zone = fmt.span(window.span), window.zone
    before = "the same time the day before" if window.calendar == "day" else f"the {span} before"
    if window.calendar == "week":
        before = "the same time the week before"
    st.caption(
        f":green[●] Live · updated {fmt.clock(snapshot.read_at, zone)} · {span} from "
        f"{fmt.clock(window.start, zone)} · compared with {before} "
        f"({fmt.clock(previous.start, zone)} to {fmt.clock(previous.end, zone)})"
    )
    left, right = st.columns([1.9, 1.3], gap="large")
    with left:
        sections.kpis(snapshot)
    with right:
        sections.health(client, snapshot)
    sections.reasons(client, snapshot)
    left, right = st.columns([2.2, 1], gap="large")
    with left:
        sections.trends(snapshot)
    with right:
        sections.funnel(snapshot)
    sections.sources(snapshot)
    sections.restated(client, snapshot)


#: Calm refreshes: the numbers never fade while a refresh runs (the "updated" time says how
#: fresh they are) and the running indicator stays hidden; metric values sized to fit the tiles.
#: Rows of columns wrap rather than squeeze: a column narrower than its content needs (a tile's
#: label, a chart) moves to the next line, so no text is cut at any window width.
_STYLE = """
<style>
  [data-testid="stMetricValue"] { font-size: 1.9rem; }
  [data-stale="true"] { opacity: 1 !important; transition: none !important; }
  [data-testid="stStatusWidget"] { visibility: hidden; }
  [data-testid="stHorizontalBlock"] { flex-wrap: wrap; row-gap: 1rem; }
  [data-testid="stColumn"] { min-width: min(100%, 13rem); }
  [data-testid="stColumn"] [data-testid="stColumn"] { min-width: min(100%, 6.5rem); }
  .st-key-kpi-tiles [data-testid="stColumn"] { min-width: min(100%, 12rem); }
  .st-key-reason-tables td, .st-key-reason-tables td * {
    white-space: normal !important; overflow-wrap: anywhere !important;
  }
</style>
"""


def main() -> None:
    st.set_page_config(page_title="ShopPulse", page_icon=":material/monitoring:", layout="wide")
    st.html(_STYLE)
    url = api_url(sys.argv[1:], os.environ)
    client = _client(url, os.environ.get("SHOPPULSE_API_TOKEN") or None)
    st.title("ShopPulse", anchor=False)
    source, choice, zone = _sidebar(client)
    st.sidebar.caption(
        f"Days, hours and times in {zone} ({'the source' if source else 'the display'} time "
        f"zone).\n\nService: {url}\n\nRefreshes every {REFRESH_SECONDS:g} s."
    )
    live(client, source, choice, zone)


main()
