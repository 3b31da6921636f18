"""What the dashboard may read: the service's HTTP read API, and nothing else.

This module is the dashboard's read contract and its only way to data. The dashboard never opens
the live DuckDB file (the service owns it); it asks the running service over HTTP with short
timeouts and turns the JSON into the frozen values of `dashboard.model`. Streamlit is not imported
here, so the data layer is testable on its own.

Endpoints read: `GET /api/v1/metrics` (window figures), `GET /api/v1/metrics/timeseries`,
`GET /api/v1/metrics/restatements`, `GET /api/v1/ingest/stats`, `GET /api/v1/ingest/quarantine`
and `GET /api/v1/metrics/timezones`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import httpx

from dashboard.model import (
    Figures,
    QuarantinedDelivery,
    RateMeter,
    Snapshot,
    SourceRow,
    Trend,
    build_health,
    build_kpis,
    delivery_total,
    list_sources,
)
from dashboard.restated import RestatedDay
from dashboard.time_range import TimeRange, Zones

DEFAULT_API_URL = "http://127.0.0.1:8000"
REFRESH_SECONDS = 2.0
TIMEOUT = httpx.Timeout(5.0, connect=1.0)
#: Most sources the per-source breakdown asks figures for (one request each).
MAX_SOURCES = 25


class ServiceUnavailable(Exception):
    """The service could not be reached or did not answer as expected; the message says why.

    `reachable` is True when the service answered, but with an error or an unexpected body.
    """

    def __init__(self, message: str, *, reachable: bool = False) -> None:
        super().__init__(message)
        self.reachable = reachable


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
        message = str(body["error"]["message"])
    except (ValueError, KeyError, TypeError):
        message = response.text[:200] or response.reason_phrase
    return f"{response.request.url.path} answered {response.status_code}: {message}"


class ReadClient:
    """The service's read API over HTTP; every failure becomes `ServiceUnavailable`."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: httpx.Timeout = TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """`token`: the service's API token, when it requires one (`api_token`)."""
        self.base_url = base_url.rstrip("/")
        self._answer_within = timeout.read or 0.0
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=self.base_url, timeout=timeout, transport=transport, headers=headers
        )
        #: Reads of one snapshot run side by side: a refresh takes the slowest read, not the sum.
        self.executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="shoppulse-read")

    def close(self) -> None:
        self.executor.shutdown(wait=True)
        self._http.close()

    def __enter__(self) -> ReadClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _get(self, path: str, params: Mapping[str, str | int] | None = None) -> Any:
        try:
            response = self._http.get(path, params=params)
        except httpx.TimeoutException:
            raise ServiceUnavailable(
                f"the service at {self.base_url} did not answer within {self._answer_within:g} s"
            ) from None
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            raise ServiceUnavailable(
                f"cannot reach the service at {self.base_url} ({reason})"
            ) from None
        if response.status_code == 401:
            raise ServiceUnavailable(
                f"the service at {self.base_url} requires its API token: set SHOPPULSE_API_TOKEN "
                "for the dashboard as for the service",
                reachable=True,
            )
        if response.status_code != 200:
            raise ServiceUnavailable(_error_message(response), reachable=True)
        try:
            return response.json()
        except ValueError:
            raise ServiceUnavailable(f"{path} did not answer JSON", reachable=True) from None

    def figures(self, window: TimeRange, source: str | None = None) -> Figures:
        return Figures.from_json(self._get("/api/v1/metrics", _params(window, source)))

    def trend(self, metric: str, window: TimeRange, source: str | None = None) -> Trend:
        """`metric` per bucket of the window's grain (hours and days on the window's zone's
        clock), every bucket present."""
        params = {
            "metric": metric,
            "grain": window.grain,
            "tz": window.zone,
            **_params(window, source),
        }
        return Trend.from_json(self._get("/api/v1/metrics/timeseries", params), window)

    def restated_days(
        self, window: TimeRange, source: str | None = None, metric: str = "net_sales"
    ) -> list[RestatedDay]:
        """Each closed day of `window`: `metric` first reported, now, and why it changed."""
        params = {"metric": metric, "grain": "day", "tz": window.zone, **_params(window, source)}
        body = self._get("/api/v1/metrics/restatements", params)
        try:
            return [RestatedDay.from_json(item) for item in body["buckets"]]
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            raise ServiceUnavailable(
                f"unexpected restatements from the service: {exc}", reachable=True
            ) from None

    def zones(self) -> Zones:
        """Each source's time zone and the display zone (`GET /api/v1/metrics/timezones`)."""
        return Zones.from_json(self._get("/api/v1/metrics/timezones"))

    def stats(self) -> dict[str, Any]:
        body: dict[str, Any] = self._get("/api/v1/ingest/stats")
        return body

    def reconciliation(self) -> dict[str, Any]:
        """What reconciliation with the store APIs found, per source."""
        body: dict[str, Any] = self._get("/api/v1/reconciliation")
        return body

    def quarantine(self, limit: int = 50, source: str | None = None) -> list[QuarantinedDelivery]:
        """The newest quarantined deliveries with their reasons."""
        params: dict[str, str | int] = {"limit": limit}
        if source:
            params["source"] = source
        body = self._get("/api/v1/ingest/quarantine", params)
        try:
            return [QuarantinedDelivery.from_json(item) for item in body["deliveries"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise ServiceUnavailable(
                f"unexpected quarantine list from the service: {exc}"
            ) from None


def _params(window: TimeRange, source: str | None) -> dict[str, str | int]:
    params: dict[str, str | int] = {"from": window.start.isoformat(), "to": window.end.isoformat()}
    if source:
        params["source"] = source
    return params


def load_snapshot(
    client: ReadClient,
    window: TimeRange,
    source: str | None,
    meter: RateMeter,
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    monotonic: Callable[[], float] = time.monotonic,
) -> Snapshot:
    """Read everything the page shows for `window` and `source` (None: all sources).

    Raises `ServiceUnavailable` when the service cannot be reached or answers unexpectedly.
    """
    try:
        return _read(client, window, source, meter, now, monotonic)
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise ServiceUnavailable(
            f"the service at {client.base_url} answered in an unexpected shape "
            f"({type(exc).__name__}: {exc}); is it a ShopPulse service of this version?",
            reachable=True,
        ) from None


def _read(
    client: ReadClient,
    window: TimeRange,
    source: str | None,
    meter: RateMeter,
    now: Callable[[], datetime],
    monotonic: Callable[[], float],
) -> Snapshot:
    stats = client.stats()
    rate = meter.add(monotonic(), delivery_total(stats, source))
    submit = client.executor.submit
    current = submit(client.figures, window, source)
    previous = submit(client.figures, window.previous(), source)
    orders = submit(client.trend, "orders", window, source)
    sales = submit(client.trend, "net_sales", window, source)
    names = list_sources(stats)[:MAX_SOURCES]
    per_source = [submit(client.figures, window, name) for name in names]
    rows = []
    for name, figures in zip(names, per_source, strict=True):
        counts = stats["sources"][name]
        rows.append(
            SourceRow(
                source=name,
                figures=figures.result(),
                accepted=int(counts.get("accepted", 0)),
                duplicate=int(counts.get("duplicate", 0)),
                quarantined=int(counts.get("quarantined", 0)),
                rejected=int(counts.get("rejected", 0)),
            )
        )
    return Snapshot(
        window=window,
        source=source,
        current=current.result(),
        previous=previous.result(),
        kpis=build_kpis(current.result(), previous.result()),
        orders_trend=orders.result(),
        sales_trend=sales.result(),
        sources=tuple(rows),
        health=build_health(stats, current.result(), source, rate),
        read_at=now(),
    )
