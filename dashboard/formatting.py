"""How the dashboard writes numbers: money with its currency, rates as percentages, ages."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from dashboard.model import Kpi

DASH = "—"
#: ASCII punctuation, which Markdown lets a backslash show literally.
_PUNCTUATION = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
#: ISO 4217 currencies without minor units (shown without decimals).
_ZERO_DECIMALS = frozenset(
    "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX VND VUV XAF XOF XPF".split()
)


def _places(currency: str | None) -> Decimal:
    return Decimal(1) if currency in _ZERO_DECIMALS else Decimal("0.01")


def money(
    amount: Decimal | None, currency: str | None, *, signed: bool = False, code: bool = True
) -> str:
    """`1,234.50 USD`: rounded half-up to the currency's minor unit, thousands separated.

    With `code=False` the currency code is left out (where the label already says it).
    """
    if amount is None:
        return DASH
    rounded = amount.quantize(_places(currency), rounding=ROUND_HALF_UP)
    if rounded == 0:
        rounded = abs(rounded)  # never "-0.00"
    text = f"{rounded:+,f}" if signed else f"{rounded:,f}"
    return f"{text} {currency}" if currency and code else text


def count(value: int | None, *, signed: bool = False) -> str:
    if value is None:
        return DASH
    return f"{value:+,d}" if signed else f"{value:,d}"


def percent(rate: float | None) -> str:
    """A ratio as a percentage with one decimal: 0.4125 -> `41.3%`."""
    if rate is None:
        return DASH
    return f"{rate * 100:.1f}%"


def points(difference: float) -> str:
    """A difference of two rates in percentage points: 0.025 -> `+2.5 pp`."""
    return f"{difference * 100:+.1f} pp"


def rate_per_second(value: float | None) -> str:
    if value is None:
        return DASH
    return f"{value:,.1f}/s"


def age(seconds: float | None) -> str:
    """How long ago: `0.4 s`, `12 s`, `3 min 5 s`, `2 h 10 min`, `3 d 4 h`."""
    if seconds is None:
        return DASH
    seconds = max(seconds, 0.0)
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60} min"
    return f"{whole // 86400} d {whole % 86400 // 3600} h"


def span(duration: timedelta) -> str:
    """`15 min`, `1 h`, `24 h`, `7 d`, `1 d 6 h`."""
    minutes = int(duration.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    if minutes % (24 * 60) == 0 and minutes >= 48 * 60:
        return f"{minutes // (24 * 60)} d"
    if minutes % 60 == 0 and minutes <= 48 * 60:
        return f"{minutes // 60} h"
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (mins, "min")]
    return " ".join(f"{amount} {unit}" for amount, unit in parts if amount)


def clock(moment: datetime | None, zone: str = "UTC") -> str:
    """`2026-01-01 12:34:56 UTC`, or on another zone's clock: `2026-01-01 13:34:56 CET`."""
    if moment is None:
        return DASH
    return moment.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S %Z")


def kpi_value(kpi: Kpi) -> str:
    if kpi.kind == "count":
        return count(kpi.value if isinstance(kpi.value, int) else None)
    if kpi.kind == "money":
        amount = kpi.value if isinstance(kpi.value, Decimal) else None
        return money(amount, kpi.currency, code=False)  # the label names the currency
    return percent(float(kpi.value) if isinstance(kpi.value, (int, float)) else None)


def kpi_delta(kpi: Kpi) -> str | None:
    """The change against the previous period, signed; None when either side is unknown."""
    delta = kpi.delta
    if delta is None:
        return None
    if kpi.kind == "count" and isinstance(delta, int):
        return count(delta, signed=True)
    if kpi.kind == "money" and isinstance(delta, Decimal):
        return money(delta, kpi.currency, signed=True, code=False)  # the label names it
    return points(float(delta))


def kpi_label(kpi: Kpi) -> str:
    """The tile's label; money tiles name their currency: `Net sales (USD)`."""
    return f"{kpi.label} ({kpi.currency})" if kpi.kind == "money" and kpi.currency else kpi.label


def kpi_note(kpi: Kpi, compared: str) -> str:
    """The line under the value: what the change compares with; provisional values say so first,
    and a rate whose periods have not settled says why it shows no change."""
    if kpi.unsettled:
        return "provisional · not compared yet" if kpi.provisional else "not compared yet"
    return f"vs previous {compared}"


def not_counted(orders: int, reasons: tuple[tuple[str, int], ...]) -> str | None:
    """ "Stored but not counted: 1 order (1 test · 1 cancelled)", or None when there are none."""
    if not orders:
        return None
    noun = "order" if orders == 1 else "orders"
    why = " · ".join(f"{count(n)} {reason}" for reason, n in reasons)
    return f"Stored but not counted: {count(orders)} {noun}" + (f" ({why})" if why else "")


def plain(text: str) -> str:
    """`text` shown literally where Streamlit renders Markdown (a table's cells): a reason or a
    topic that a sender chose never becomes a link, emphasis or a colour directive."""
    return "".join(f"\\{char}" if char in _PUNCTUATION else char for char in text)
