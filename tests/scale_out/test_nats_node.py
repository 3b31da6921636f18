"""The test fixtures' nats-server node: a port taken before its first start moves it."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.scale_out.nats import single_node


def test_a_node_whose_port_was_taken_moves_to_free_ports(tmp_path: Path) -> None:
    node = single_node(tmp_path / "nats")
    taken = node.config.http_port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.bind(("127.0.0.1", taken))
        blocker.listen()
        node.start()
        try:
            assert node.running
            assert node.config.http_port != taken
            assert f"{node.config.http_port}" in node.config_path.read_text()
        finally:
            node.stop()
