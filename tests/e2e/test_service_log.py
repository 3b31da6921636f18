"""The service log of a real `shoppulse serve` (and of the uvicorn command running the service):
every line written within a second, none lost at SIGTERM or Ctrl-C (uvicorn's logging set-up,
which closes existing handlers, and its re-raised stop signal included)."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest

from ingest.providers import get_provider
from tests.conftest import fixture_bytes
from tests.e2e.server import ServiceProcess

SECRET = "log-test-secret"
BODY = fixture_bytes("shopify", "carts_create.json")
DELIVERIES = 60
#: A line must be in the log this soon after its delivery was answered.
WITHIN = 1.0


def delivery_lines(log: Path) -> list[dict[str, object]]:
    """The JSON lines the service wrote about deliveries (one per answered delivery)."""
    lines = []
    for text in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if text.startswith("{"):
            line = orjson.loads(text)
            if str(line.get("message", "")).startswith("delivery "):
                lines.append(line)
    return lines


def send(client: httpx.Client, count: int, start: int = 0) -> None:
    shopify = get_provider("shopify")
    for number in range(start, start + count):
        headers = shopify.sign(
            BODY, SECRET, topic="carts/create", delivery_id=f"d-{number}", timestamp=0
        )
        answer = client.post("/webhooks/acme", content=BODY, headers=headers)
        assert answer.status_code == 200, answer.text
    client.post("/webhooks/nobody", content=b"{}")  # a rejected delivery is logged too (404)


def wait_for_lines(log: Path, count: int, timeout: float) -> float:
    """Seconds until `count` delivery lines are in the log; fails after `timeout`."""
    started = time.monotonic()
    while len(delivery_lines(log)) < count:
        if time.monotonic() - started > timeout:
            pytest.fail(f"{len(delivery_lines(log))} of {count} lines after {timeout} s")
        time.sleep(0.02)
    return time.monotonic() - started


class UvicornProcess(ServiceProcess):
    """The service run by the uvicorn command itself, configured from the environment."""

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "uvicorn", "--factory", "shoppulse.asgi:app",
            "--host", "127.0.0.1", "--port", str(self.port),
        ]  # fmt: skip


@pytest.mark.parametrize(
    ("runner", "stop"),
    [
        ("serve", signal.SIGTERM),
        ("serve", signal.SIGINT),
        ("uvicorn", signal.SIGTERM),
    ],
)
def test_every_delivery_line_is_written_within_a_second_and_none_is_lost_at_stop(
    tmp_path: Path, runner: str, stop: signal.Signals
) -> None:
    service = ServiceProcess.for_sources(tmp_path, {"acme": ("shopify", SECRET)})
    if runner == "uvicorn":
        env = {"SHOPPULSE_CONFIG": str(service.config), "SHOPPULSE_DB_PATH": str(service.db)}
        service = UvicornProcess(service.config, service.db, workdir=tmp_path, env=env)
    service.start()
    assert service.process is not None
    try:
        with service.client() as client:
            send(client, DELIVERIES)
            wait_for_lines(service.log_path, DELIVERIES + 1, WITHIN)
            send(client, DELIVERIES, start=DELIVERIES)  # then stop at once: nothing may wait
        service.process.send_signal(stop)
        service.process.wait(15)
    finally:
        service.kill()
    lines = delivery_lines(service.log_path)
    assert len(lines) == 2 * (DELIVERIES + 1), service.log_tail()
    stored = {line["delivery_id"] for line in lines if line.get("outcome") == "stored"}
    assert stored == {f"d-{number}" for number in range(2 * DELIVERIES)}
    assert sum(line.get("status") == 404 for line in lines) == 2
