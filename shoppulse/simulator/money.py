"""Money and time as the simulated stores write them: exact decimals in each currency's minor units,
local and UTC timestamps."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import orjson

#: Rough prices per US dollar, so that a catalog price looks plausible in another currency.
_PER_USD = {
    "USD": "1",
    "EUR": "0.92",
    "GBP": "0.79",
    "CAD": "1.37",
    "AUD": "1.52",
    "NZD": "1.65",
    "CHF": "0.88",
    "SEK": "10.5",
    "NOK": "10.7",
    "DKK": "6.9",
    "PLN": "4.0",
    "JPY": "150",
    "KRW": "1350",
    "INR": "83",
    "BRL": "5.0",
    "MXN": "17",
    "KWD": "0.307",
    "BHD": "0.376",
}
#: ISO 4217 minor-unit digits that differ from 2.
_MINOR_DIGITS = {
    "JPY": 0,
    "KRW": 0,
    "VND": 0,
    "CLP": 0,
    "ISK": 0,
    "UGX": 0,
    "KWD": 3,
    "BHD": 3,
    "JOD": 3,
    "OMR": 3,
    "TND": 3,
}
ZERO = Decimal(0)


@functools.cache
def _quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-_MINOR_DIGITS.get(currency, 2))


def round_money(amount: Decimal, currency: str) -> Decimal:
    """`amount` rounded half up to the currency's minor unit."""
    return amount.quantize(_quantum(currency), ROUND_HALF_UP)


@functools.lru_cache(maxsize=8192)
def money_text(amount: Decimal, currency: str) -> str:
    """`amount` as stores write it in JSON: a string with the currency's minor digits."""
    return format(round_money(amount, currency), "f")


def from_usd(usd: str, currency: str) -> Decimal:
    """A plausible price in `currency` for a catalog price in US dollars."""
    return round_money(Decimal(usd) * Decimal(_PER_USD.get(currency, "1")), currency)


def money_set(amount: Decimal, currency: str) -> dict[str, Any]:
    """Shopify's `*_set` object: the amount in shop and presentment money (the same here)."""
    money = {"amount": money_text(amount, currency), "currency_code": currency}
    return {"shop_money": money, "presentment_money": dict(money)}


def put_money(obj: dict[str, Any], name: str, amount: Decimal, currency: str) -> None:
    """`name` as a plain string and `name_set` with shop and presentment money, equal."""
    obj[name] = money_text(amount, currency)
    obj[f"{name}_set"] = money_set(amount, currency)


def money_number(amount: Decimal, currency: str) -> orjson.Fragment:
    """An exact decimal written as a JSON number (Shopify sends a few amounts that way)."""
    return orjson.Fragment(money_text(amount, currency).encode())


#: The precision of the timestamps stores write.
MILLISECOND = timedelta(milliseconds=1)


def local_time(moment: datetime, offset: timezone) -> str:
    """`moment` in the store's local time, ISO 8601 with milliseconds and the offset."""
    return moment.astimezone(offset).isoformat(timespec="milliseconds")


def utc_time(moment: datetime) -> str:
    """`moment` in UTC, ISO 8601 with milliseconds and a `Z`."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
