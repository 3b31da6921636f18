"""The publisher's manifest on its own: a real SQLite file under tmp_path."""

from __future__ import annotations

from pathlib import Path

from shoppulse.publish.manifest import Manifest, PartFile, TrackedDelivery


def part(path: str, lo: int | None = None, hi: int | None = None, *, rows: int = 1) -> PartFile:
    return PartFile("events", "", path, rows, lo, hi)


def test_recorded_parts_are_listed_in_order_and_survive_reopening(tmp_path: Path) -> None:
    manifest = Manifest(tmp_path / "manifest.sqlite3")
    manifest.begin()
    manifest.record(
        [
            part("events/s2.parquet", 11, 20, rows=10),
            part("events/s1.parquet", 1, 10, rows=10),
            PartFile("orders", "2026-01-10", "orders/day=2026-01-10/g1-0.parquet", 0, None, None),
            PartFile("orders", "none", "orders/day=none/g1-0.parquet", 0, None, None),
        ],
        [],
        at=100.0,
    )
    manifest.set_meta("generation", 1)
    manifest.commit()
    manifest.close()

    reopened = Manifest(tmp_path / "manifest.sqlite3")
    assert reopened.meta("generation") == "1"
    assert reopened.meta("never_set", "default") == "default"
    assert sorted(reopened.datasets()) == ["events", "orders"]
    assert reopened.files("events") == ["events/s1.parquet", "events/s2.parquet"]
    assert reopened.files("orders") == [
        "orders/day=2026-01-10/g1-0.parquet",
        "orders/day=none/g1-0.parquet",
    ]
    assert reopened.paths("orders", "none") == ["orders/day=none/g1-0.parquet"]
    assert [p.rows for p in reopened.parts("events")] == [10, 10]
    assert reopened.parts("events")[0] == part("events/s1.parquet", 1, 10, rows=10)
    reopened.close()


def test_retired_parts_leave_the_listing_but_stay_known_until_forgotten(tmp_path: Path) -> None:
    manifest = Manifest(tmp_path / "manifest.sqlite3")
    manifest.record([part("events/a.parquet", 1, 1), part("events/b.parquet", 2, 2)], [], 10.0)
    manifest.record([part("events/m.parquet", 1, 2, rows=2)], ["events/a.parquet"], 20.0)
    manifest.record([], ["events/b.parquet"], 30.0)

    assert manifest.files("events") == ["events/m.parquet"]
    # Retired files are still named (a crash must not delete what an old catalog reads) ...
    assert manifest.known_paths() == {"events/a.parquet", "events/b.parquet", "events/m.parquet"}
    # ... until they expired and were forgotten.
    assert manifest.expired(25.0) == ["events/a.parquet"]
    manifest.forget_retired(manifest.expired(25.0))
    assert manifest.known_paths() == {"events/b.parquet", "events/m.parquet"}
    assert manifest.expired(30.0) == ["events/b.parquet"]
    manifest.close()


def test_a_rolled_back_cycle_leaves_the_manifest_as_it_was(tmp_path: Path) -> None:
    manifest = Manifest(tmp_path / "manifest.sqlite3")
    manifest.record([part("events/a.parquet", 1, 1)], [], 10.0)
    manifest.begin()
    manifest.record([part("events/b.parquet", 2, 2)], ["events/a.parquet"], 20.0)
    manifest.set_meta("event_seq", 2)
    manifest.rollback()
    manifest.close()

    reopened = Manifest(tmp_path / "manifest.sqlite3")
    assert reopened.files("events") == ["events/a.parquet"]
    assert reopened.known_paths() == {"events/a.parquet"}
    assert reopened.meta("event_seq") == "0"
    reopened.close()


def test_entity_keys_remember_their_part(tmp_path: Path) -> None:
    manifest = Manifest(tmp_path / "manifest.sqlite3")
    manifest.set_key_parts("carts", [("acme\x1fc1", "2026-01-10"), ("acme\x1fc2", "none")])
    manifest.set_key_parts("carts", [("acme\x1fc1", "2026-01-08")])  # moved to another day
    manifest.set_key_parts("orders", [("acme\x1fc1", "2026-01-01")])  # another dataset

    assert manifest.key_parts("carts", ["acme\x1fc1", "acme\x1fc1"]) == {"2026-01-08"}
    assert manifest.key_parts("carts", ["acme\x1fc2", "acme\x1fnew"]) == {"none"}
    manifest.forget_keys("carts")
    assert manifest.key_parts("carts", ["acme\x1fc1", "acme\x1fc2"]) == set()
    assert manifest.key_parts("orders", ["acme\x1fc1"]) == {"2026-01-01"}
    manifest.close()


def test_quarantined_deliveries_are_watched_and_their_changes_kept(tmp_path: Path) -> None:
    manifest = Manifest(tmp_path / "manifest.sqlite3")
    manifest.track([(3, "quarantined", "bad json", 0), (7, "quarantined", "unknown topic", 0)])
    manifest.track([(3, "accepted", None, 1)])  # already watched: kept as it was
    assert manifest.quarantined(through=5) == [TrackedDelivery(3, "quarantined", "bad json", 0)]
    assert [d.delivery_seq for d in manifest.quarantined(through=10)] == [3, 7]

    manifest.override([TrackedDelivery(7, "accepted", None, 2)])
    assert manifest.quarantined(through=10) == [TrackedDelivery(3, "quarantined", "bad json", 0)]
    assert manifest.overrides() == [TrackedDelivery(7, "accepted", None, 2)]
    manifest.close()
