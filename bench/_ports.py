"""Ports for the servers the benchmarks start: one nothing listens on, chosen by the kernel.

Shared by the bench scripts (`from bench._ports import free_port`, as with `bench._load`); the
port is free when chosen, not reserved, which is enough on a machine that runs one benchmark.
"""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
