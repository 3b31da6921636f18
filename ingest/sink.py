"""Where the endpoint hands an authentic delivery: the seam between intake and durability.

The embedded service's `Writer` commits deliveries to DuckDB; a scale-out intake replica publishes
them to a replicated log instead. Either way `submit` returns only once the delivery is durable
(committed, or acknowledged by the log), and raises `StorageError` or `Overloaded` when it is not,
so the endpoint never answers 2xx for a delivery that could still be lost.
"""

from __future__ import annotations

from typing import Protocol

from ingest.storage.writer import Delivery, Outcome


class Sink(Protocol):
    """What `Intake` needs from the place deliveries go."""

    @property
    def healthy(self) -> bool:
        """Whether deliveries are being made durable (False after a failure)."""
        ...

    @property
    def last_error(self) -> str | None:
        """Why the last attempt failed, while unhealthy."""
        ...

    @property
    def queue_depth(self) -> int:
        """Deliveries waiting to be made durable."""
        ...

    @property
    def events_stored_through(self) -> int | None:
        """The newest stored event's seq (None where no events are stored, as in the log)."""
        ...

    async def submit(self, delivery: Delivery) -> Outcome:
        """Make `delivery` durable; raise `StorageError` or `Overloaded` when it was not."""
        ...

    def count(self, source: str, outcome: str, reason: str) -> None:
        """Record a delivery that stores nothing (a rejection), to be kept with the counts."""
        ...
