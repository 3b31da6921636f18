"""Money arithmetic in SQL for the analyst views: exact, rounded half-even, to the four places
money is stored with or to a currency's minor units (ISO 4217, from the `iso4217` package)."""

from __future__ import annotations

from functools import cache

import iso4217

from ingest.events import MONEY_SCALE


@cache
def minor_units() -> dict[str, int]:
    """ISO 4217: the number of minor-unit digits of each currency that has one."""
    return {c.code: int(c.exponent) for c in iso4217.Currency if c.exponent is not None}


def minor_units_sql(currency: str) -> str:
    """SQL: the minor-unit digits of the currency code in `currency` (ISO 4217), or the four
    places money is stored with for a code ISO 4217 gives none (funds, metals, unknown codes)."""
    by_digits: dict[int, list[str]] = {}
    for code, digits in sorted(minor_units().items()):
        by_digits.setdefault(digits, []).append(code)
    cases = " ".join(
        f"WHEN {currency} IN ({', '.join(repr(code) for code in codes)}) THEN {digits}"
        for digits, codes in sorted(by_digits.items())
        if digits != MONEY_SCALE
    )
    return f"CAST(CASE {cases} ELSE {MONEY_SCALE} END AS INTEGER)"


def aov_sql(gross: str, discounts: str, orders: str, digits: str = str(MONEY_SCALE)) -> str:
    """(gross - discounts) / orders, exact, rounded half-even to `digits` places (0 to 4; as
    the API does with 4), as DECIMAL(38,4)."""
    scale = 10**MONEY_SCALE
    n = f"CAST(({gross} - {discounts}) * {scale} AS HUGEINT)"
    d = f"(CAST({orders} AS HUGEINT) * CAST(pow(10, {MONEY_SCALE} - {digits}) AS HUGEINT))"
    q, r = f"({n} // {d})", f"({n} % {d})"
    up = f"(2 * abs({r}) > {d} OR (2 * abs({r}) = {d} AND {q} % 2 <> 0))"
    rounded = f"({q} + CASE WHEN {up} THEN sign({n}) ELSE 0 END)"
    unit = f"CAST(pow(10, -({digits})) AS DECIMAL(5,4))"
    return (
        f"CASE WHEN {orders} = 0 THEN NULL "
        f"ELSE CAST(CAST({rounded} AS DECIMAL(38,0)) * {unit} AS DECIMAL(38,4)) END"
    )
