"""Stripe API: the Checkout sessions and refunds created since a moment.

Requests: `GET {api_base_url}/v1/checkout/sessions?created[gte]=<unix>&limit=100
[&starting_after=<last id>]` and `GET /v1/refunds?...` the same way, with
`Authorization: Bearer <api_key>` (a restricted key with read access to Checkout Sessions and
Charges/Refunds). Lists are paged with `has_more` and `starting_after` (the last object's id).

Stripe filters by creation only, and a session completes or expires after it is created (at most
24 hours later by default), so sessions are listed from 24 hours before the window.

Mapping: each session is written as the event its webhook would carry and mapped by the Stripe
adapter: `status = complete` as `checkout.session.completed`, `expired` as
`checkout.session.expired`; open sessions are not reconciled (no webhook is sent for them). A
refund is written as the `charge.refunded` event of its charge listing just that refund. Stripe
objects have no `updated_at`, so these records are compared by presence only: a session or refund
that ShopPulse has is current; one it lacks is filled, dated by the session's `expires_at`
(expired) or `created` (completed) and the refund's `created`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from ingest.providers.base import Provider
from ingest.reconcile.http import ApiClient, ApiFailure
from ingest.reconcile.records import FetchedRecord, Page, Pager, mapped
from ingest.sources import Source

PER_PAGE = 100
SESSION_LIFETIME = timedelta(hours=24)
_SESSION_TOPICS = {"complete": "checkout.session.completed", "expired": "checkout.session.expired"}


def _moment(value: Any) -> datetime | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    return None


def _envelope(
    topic: str, obj: Mapping[str, Any], created: datetime | None, livemode: bool
) -> dict[str, Any]:
    """The Stripe event a webhook would carry for `obj`."""
    return {
        "id": f"reconcile_{obj.get('id', '')}",
        "object": "event",
        "type": topic,
        "created": int(created.timestamp()) if created is not None else None,
        "livemode": obj.get("livemode", livemode),
        "data": {"object": dict(obj)},
    }


class StripeCheckout:
    def __init__(self, source: Source, provider: Provider, client: ApiClient) -> None:
        self.source = source
        self.provider = provider
        self.client = client
        key = source.api_key.get_secret_value() if source.api_key is not None else ""
        #: Refunds carry no `livemode`: a test-mode key lists only test-mode objects.
        self.livemode = not key.startswith(("rk_test_", "sk_test_"))

    def close(self) -> None:
        self.client.close()

    def _list(self, path: str, created_from: datetime) -> Iterator[list[Mapping[str, Any]]]:
        after: str | None = None
        pager = Pager(f"Stripe {path}")
        while True:
            params: dict[str, Any] = {
                "created[gte]": int(created_from.timestamp()),
                "limit": PER_PAGE,
            }
            if after is not None:
                params["starting_after"] = after
            response = self.client.request("GET", path, params=params)
            try:
                body = response.json()
            except ValueError:
                raise ApiFailure("the store API answered with invalid JSON") from None
            data = body.get("data") if isinstance(body, Mapping) else None
            if not isinstance(data, list):
                raise ApiFailure(f"the store API answered {path} without a data list")
            objects = [obj for obj in data if isinstance(obj, Mapping)]
            yield objects
            if not body.get("has_more") or not objects:
                return
            after = str(objects[-1].get("id", ""))
            pager.next(after)

    def pages(self, since: datetime) -> Iterator[Page]:
        for sessions in self._list("/v1/checkout/sessions", since - SESSION_LIFETIME):
            yield Page([r for r in map(self._session, sessions) if r is not None])
        for refunds in self._list("/v1/refunds", since):
            yield Page([self._refund(refund) for refund in refunds])

    def _session(self, session: Mapping[str, Any]) -> FetchedRecord | None:
        topic = _SESSION_TOPICS.get(str(session.get("status")))
        if topic is None:
            return None
        field = "expires_at" if session.get("status") == "expired" else "created"
        created = _moment(session.get(field))
        entity = str(session.get("id", ""))
        envelope = _envelope(topic, session, created, self.livemode)
        return mapped(self.provider, topic, entity, created, envelope, versioned=False)

    def _refund(self, refund: Mapping[str, Any]) -> FetchedRecord:
        created = _moment(refund.get("created"))
        charge = {
            "id": refund.get("charge"),
            "object": "charge",
            "payment_intent": refund.get("payment_intent"),
            "currency": refund.get("currency"),
            "livemode": refund.get("livemode", self.livemode),
            "refunds": {"object": "list", "data": [dict(refund)], "has_more": False},
        }
        topic = "charge.refunded"
        entity = str(refund.get("id", ""))
        envelope = _envelope(topic, charge, created, self.livemode)
        return mapped(self.provider, topic, entity, created, envelope, versioned=False)
