"""The advice given with each quarantine reason, for every adapter's way of wording it."""

from __future__ import annotations

import pytest

from ingest.providers import get_provider
from ingest.providers.base import UnusableDelivery
from ingest.quarantine import (
    CANNOT_REPLAY,
    CHECK_CLOCKS,
    FIX_MAPPING,
    NOT_JSON,
    UNSUBSCRIBE,
    next_step,
)


@pytest.mark.parametrize(
    ("provider", "topic"),
    [
        ("shopify", "products/update"),
        ("woocommerce", "coupon.created"),
        ("bigcommerce", "store/product/updated"),
        ("stripe", "invoice.paid"),
    ],
)
def test_an_unknown_topic_says_unsubscribe(provider: str, topic: str) -> None:
    with pytest.raises(UnusableDelivery) as caught:
        get_provider(provider).normalize(topic, {"id": 1}, {})
    assert next_step(str(caught.value)) == UNSUBSCRIBE
    assert "unsubscribe" in UNSUBSCRIBE and "mapping" not in UNSUBSCRIBE


@pytest.mark.parametrize(
    ("reason", "advice"),
    [
        ("invalid JSON: unexpected character", NOT_JSON),
        (
            "event time 2099-01-01T00:00:00+00:00 (created_at of order '1') is more than 1 day "
            "in the future (service clock 2026-01-01T00:00:00+00:00)",
            CHECK_CLOCKS,
        ),
        ("the raw body was not kept, so the delivery cannot be replayed", CANNOT_REPLAY),
        ("field 'total_line_items_price' is missing", FIX_MAPPING),
        (None, FIX_MAPPING),
    ],
)
def test_other_reasons(reason: str | None, advice: str) -> None:
    assert next_step(reason) == advice
