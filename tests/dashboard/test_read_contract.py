"""The dashboard reads the metrics API through the API's own model of its answer
(`metrics.responses`): every field the API sends is read, converted or knowingly left out, and an
answer that is not what the API sends is refused with a clear error."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from dashboard import model
from dashboard.model import AS_SENT, CONVERTED, NOT_READ, CurrencyFigures, Figures
from metrics import responses
from shoppulse.settings import Settings
from tests.conftest import SECRET, FrozenClock, make_source
from tests.helpers.app import figures
from tests.metrics.shop import WEEK, Shop, start_service

T0 = datetime(2026, 4, 6, 10, 0, tzinfo=UTC)


def test_every_field_of_the_api_answer_is_read_converted_or_left_out_knowingly() -> None:
    sent = set(responses.WindowFigures.model_fields)
    decided = [*AS_SENT, *CONVERTED, *NOT_READ]
    assert len(decided) == len(set(decided)), "a field is decided twice"
    assert sent == set(decided)
    ours = {f.name for f in dataclasses.fields(Figures)}
    assert ours == set(AS_SENT) | set(CONVERTED.values())


def test_each_currency_is_read_whole() -> None:
    sent = set(responses.CurrencyFigures.model_fields)
    assert sent == {f.name for f in dataclasses.fields(CurrencyFigures)}
    assert set(model.MONEY_FIELDS) <= sent


def test_the_dashboard_reads_what_the_service_answers(tmp_path: Path) -> None:
    config = Settings(db_path=tmp_path / "live.duckdb", batch_linger_ms=0)
    sources = {"shop": make_source("shop", "shopify", SECRET)}
    client: TestClient = start_service(config, sources, FrozenClock(T0))
    try:
        Shop(client, "shop").order("o1", T0, gross="25.50", currency="EUR")
        body = figures(client, **WEEK)
    finally:
        client.__exit__(None, None, None)
    read = Figures.from_json(body)
    assert read.orders == 1
    assert read.start == datetime(2020, 1, 1, tzinfo=UTC)
    [eur] = read.by_currency
    assert eur.currency == "EUR" and eur.gross_sales == Decimal("25.50")
    assert read.events_folded_through >= 1
    assert read.cart_abandon_after_seconds == config.cart_abandon_after.total_seconds()


@pytest.mark.parametrize("missing", ["carts_open", "by_currency", "from"])
def test_an_answer_without_a_field_is_refused_by_name(missing: str) -> None:
    body: dict[str, str | None] = {
        "source": None,
        "from": "2026-03-14T14:10:00+00:00",
        "to": "2026-03-14T15:10:00+00:00",
    }
    body.pop(missing, None)
    with pytest.raises(ValidationError) as refused:
        Figures.from_json(body)
    assert missing in str(refused.value)
