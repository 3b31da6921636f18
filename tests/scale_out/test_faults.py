"""Faults with real processes: kill -9 of the store and of an intake replica under load, and of a
node of a 3-node JetStream cluster. Every acknowledged delivery is stored exactly once."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from shoppulse.scale_out.connection import connect
from shoppulse.scale_out.settings import STREAM, LogSettings
from shoppulse.scale_out.stream import StreamSpec
from tests.e2e.test_crash_recovery import Sent, post
from tests.helpers.waiting import wait_for
from tests.scale_out.conftest import RoleFactory
from tests.scale_out.load import SpreadLoad
from tests.scale_out.nats import NatsNode, cluster, create_stream
from tests.scale_out.roles import RoleProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def lag(store: RoleProcess) -> dict[str, Any]:
    with store.client() as client:
        found: dict[str, Any] = client.get("/api/v1/ingest/stats").json()["log"]
    return found


def caught_up(store: RoleProcess, timeout: float = 45.0) -> None:
    """Nothing behind, by a reading of the log taken after this call: a reading from before the
    last acknowledgements would say "caught up" too early."""
    since = datetime.now(UTC)

    def fresh_and_caught_up() -> bool:
        found = lag(store)
        checked = found["checked_at"]
        return (
            checked is not None and datetime.fromisoformat(checked) > since and found["behind"] == 0
        )

    wait_for(fresh_and_caught_up, "the store caught up", timeout)


def assert_stored_once(store: RoleProcess, acked: dict[str, Sent]) -> None:
    """After the store stopped: each acknowledged delivery is in its file once, with its order."""
    with duckdb.connect(str(store.db), read_only=True) as con:
        rows = con.execute(
            "SELECT d.delivery_id, count(DISTINCT d.delivery_seq), list(e.entity_id) "
            "FROM deliveries d LEFT JOIN events e USING (delivery_seq) GROUP BY 1"
        ).fetchall()
    stored = {row[0]: (int(row[1]), list(row[2])) for row in rows}
    lost = sorted(set(acked) - set(stored))
    assert not lost, f"{len(lost)} acknowledged deliveries lost, e.g. {lost[:3]}"
    for delivery_id, sent in acked.items():
        assert stored[delivery_id] == (1, [str(sent.order_id)]), delivery_id


def assert_metrics_equal_recompute(store: RoleProcess) -> None:
    with store.client(timeout=30.0) as client:
        check = client.get("/api/v1/metrics/check").json()
    assert check["equal"], check


def test_kill_9_of_the_store_under_load(nats_node: NatsNode, roles: RoleFactory) -> None:
    store = roles("store", nats_node.url).start()
    intakes = [roles("intake", nats_node.url).start() for _ in range(2)]
    load = SpreadLoad([i.base_url for i in intakes], "store-kill").start()
    try:
        load.wait_acked(80)
        store.kill()
        at_kill = load.acked_count()
        load.wait_acked(at_kill + 40)  # intake keeps acknowledging with the store down
    finally:
        load.join()
    assert load.answers["503"] == 0

    store.start()
    caught_up(store)
    with intakes[0].client() as client:  # a sender's late retry of an acknowledged delivery
        again = post(client, next(iter(load.acked.values())))
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert_metrics_equal_recompute(store)
    store.stop()
    assert_stored_once(store, load.acked)


def test_kill_9_of_an_intake_replica_mid_request(nats_node: NatsNode, roles: RoleFactory) -> None:
    store = roles("store", nats_node.url).start()
    intakes = [roles("intake", nats_node.url).start() for _ in range(2)]
    load = SpreadLoad([i.base_url for i in intakes], "intake-kill").start()
    try:
        load.wait_acked(80)
        intakes[0].kill()
        at_kill = load.acked_count()
        load.wait_acked(at_kill + 40)  # senders' retries go to the other replica
    finally:
        load.join()
    assert load.interrupted, "the kill interrupted no request"
    # A sender retries each interrupted delivery until it is acknowledged (stored, or a duplicate
    # of what the dead replica had already put in the log); the load stopped some mid-way.
    with intakes[1].client() as client:
        for delivery_id in sorted(load.interrupted - set(load.acked)):
            sent = next(s for s in load.sent if s.delivery_id == delivery_id)
            answer = post(client, sent)
            assert answer.status_code == 200, answer.text
            assert answer.json()["status"] in ("stored", "duplicate")
            load.acked[delivery_id] = sent

    caught_up(store)
    assert_metrics_equal_recompute(store)
    store.stop()
    assert_stored_once(store, load.acked)


def stream_leader(url: str) -> str | None:
    async def read() -> str | None:
        nc = await connect(LogSettings(url=url), name="test-leader")
        try:
            info = await nc.jetstream(timeout=2.0).stream_info(STREAM)
            return info.cluster.leader if info.cluster else None
        finally:
            await nc.close()

    try:
        return asyncio.run(read())
    except Exception:
        return None


def test_a_three_node_cluster_survives_the_kill_of_one_node(
    tmp_path: Path, roles: RoleFactory
) -> None:
    nodes = cluster(tmp_path / "cluster")
    for node in nodes:
        node.start(wait=False)
    try:
        for node in nodes:
            node.wait_ready()
        urls = ",".join(node.url for node in nodes)
        create_stream(nodes[0].url, StreamSpec(STREAM, replicas=3))
        fast = {"SHOPPULSE_LOG_PUBLISH_TIMEOUT_SECONDS": "2"}
        # Acknowledgements sent to the killed node are lost: those messages come again after
        # ack_wait (the ledger finds them duplicates); a short one keeps the test short.
        store = roles("store", urls, env={"SHOPPULSE_LOG_ACK_WAIT_SECONDS": "5"}).start()
        intake = roles("intake", urls, env=fast).start()
        load = SpreadLoad([intake.base_url], "cluster").start()
        try:
            load.wait_acked(50)
            leader = stream_leader(urls)
            victim = next(node for node in nodes if node.config.name == leader)
            survivors = [node for node in nodes if node is not victim]
            victim.kill()
            killed_at = time.monotonic()
            wait_for(
                lambda: stream_leader(survivors[0].url) not in (None, leader),
                "the stream leader moved",
                timeout=20.0,
            )
            moved_at = time.monotonic()
            at_move = load.acked_count()
            load.wait_acked(at_move + 40, timeout=20.0)
        finally:
            load.join()
        # 503s only while the stream had no leader (with slack for requests already waiting).
        late = [t - killed_at for t in load.unavailable_at if t > moved_at + 2.5]
        assert not late, f"503s after the new leader was elected: {late[:5]}"

        # Two nodes down: no quorum, nothing is acknowledged: 503.
        survivors[0].kill()
        with httpx.Client(base_url=intake.base_url, timeout=15.0) as client:
            lone = Sent("cluster-no-quorum", 9_000_000_000_001)
            answer = post(client, lone)
            assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
            survivors[0].start(wait=False)
            deadline = time.monotonic() + 30
            while (answer := post(client, lone)).status_code == 503:
                assert time.monotonic() < deadline, "no 2xx after the quorum came back"
                time.sleep(0.5)
            assert answer.status_code == 200
            load.acked[lone.delivery_id] = lone

        victim.start()  # all three back: the store catches up
        caught_up(store, timeout=60.0)
        store.stop()
        assert_stored_once(store, load.acked)
    finally:
        for node in nodes:
            node.kill()
