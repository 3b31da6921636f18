"""Ports for the servers tests start: one nothing listens on, chosen by the kernel.

The port is free when chosen, not reserved: the socket is closed before the server binds it,
so another process may take it meanwhile (the nats-server fixture moves to new ports then, see
`tests/scale_out/nats.py`).
"""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
