"""The store simulator: realistic Shopify webhook traffic, and the sender that posts it.

Two parts, both importable (benchmarks use them directly; `shoppulse simulate` is a thin layer):

- `Simulator` is a pure, seeded generator of deliveries (`SimDelivery`: topic, delivery id, body
  bytes, ...). Simulated shoppers create and update carts; a share of them start a checkout and a
  share of those order; orders get paid, fulfilled, sometimes cancelled or refunded. The stream
  carries the faults real senders produce: retried duplicates, stale order versions arriving after
  newer ones, late orders that recover carts abandoned hours ago, and a few unusable bodies.
  `Simulator.truth` tells what the stream means under the metric definitions (docs/metrics.md).
- `send` posts deliveries with `httpx.AsyncClient`, signed with each source's secret, paced at
  the generator's rate, and counts the answers (`SendReport`).

Modules: `model` (configuration, deliveries, truth), `money` (amounts and timestamps as stores
write them), `entities` (carts, checkouts, orders and the sample payloads), `generator`
(`Simulator`), `sender` (`send`). Import from this package; the rest is internal.

Bodies are filled into trimmed copies of Shopify's sample payloads (`simulator_templates/`).
Delivery `i` is stamped `start + i / rate`; the same seed, start and rate give the same bytes,
and the same seed alone gives the same topics, delivery ids and entity ids.
"""

from shoppulse.simulator.generator import Simulator, take
from shoppulse.simulator.model import (
    DEFAULT_URL,
    SHOPIFY_API_VERSION,
    DeliveryCounts,
    Mix,
    SimDelivery,
    SimulationConfig,
    StoreTruth,
    store_sources,
)
from shoppulse.simulator.sender import SendReport, send

__all__ = [
    "DEFAULT_URL",
    "SHOPIFY_API_VERSION",
    "DeliveryCounts",
    "Mix",
    "SendReport",
    "SimDelivery",
    "SimulationConfig",
    "Simulator",
    "StoreTruth",
    "send",
    "store_sources",
    "take",
]
