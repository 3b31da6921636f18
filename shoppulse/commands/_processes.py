"""Child processes for the commands that run several: start, watch, stop cleanly on Ctrl-C.

Each child runs in its own session, so Ctrl-C reaches only the parent, which then stops the
children newest first (signal, wait, kill); on Linux a child also gets SIGTERM if the parent dies.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

import httpx

START_TIMEOUT = 45.0
STOP_TIMEOUT = 15.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def port_in_use(host: str, port: int) -> bool:
    """Whether something already listens on host:port (binding fails)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the parent dies (Linux), so no child outlives it."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path | None
    stop_signal: int = signal.SIGTERM

    def wait(self) -> int:
        return self.process.wait()

    def log_tail(self, lines: int = 15) -> str:
        if self.log_path is None:
            return ""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Children:
    """The processes a command started; stopped newest first."""

    running: list[Child] = field(default_factory=list)

    def start(
        self,
        name: str,
        command: Sequence[str],
        log_path: Path | None,
        stop_signal: int = signal.SIGTERM,
        env: Mapping[str, str] | None = None,
    ) -> Child:
        """Start `command` (with this environment plus `env`), its output to `log_path`."""
        output: IO[bytes] | None = None
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            output = log_path.open("ab")
        try:
            process = subprocess.Popen(
                list(command),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT if output else None,
                start_new_session=True,
                preexec_fn=_die_with_parent,
                env={**os.environ, **env} if env else None,
            )
        finally:
            if output is not None:
                output.close()
        child = Child(name, process, log_path, stop_signal)
        self.running.append(child)
        return child

    def wait_any(self, poll: float = 0.5) -> Child:
        """Block until one of the children exits; return it."""
        while True:
            for child in self.running:
                if child.process.poll() is not None:
                    return child
            time.sleep(poll)

    def stop_all(self, say: Callable[[str], None]) -> None:
        for child in reversed(self.running):
            process = child.process
            if process.poll() is None:
                say(f"stopping the {child.name}")
                process.send_signal(child.stop_signal)
                try:
                    process.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    say(f"the {child.name} did not stop within {STOP_TIMEOUT:g} s: killing it")
                    process.kill()
                    process.wait(STOP_TIMEOUT)
        self.running.clear()


class Stop(Exception):
    """SIGINT (Ctrl-C) or SIGTERM arrived."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise Stop(signal.Signals(signum).name)


@contextmanager
def stop_signals() -> Iterator[None]:
    """SIGINT and SIGTERM raise `Stop` inside the block (even where a shell ignored SIGINT)."""
    previous = {signum: signal.signal(signum, _raise_stop) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def signals_ignored() -> Iterator[None]:
    """While children are being stopped, a second Ctrl-C must not abandon them half-way."""
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def wait_until_up(url: str, child: Child, timeout: float = START_TIMEOUT) -> None:
    """Poll `url` until it answers 200; raise RuntimeError if the child exits or time runs out."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=1.0) as client:
        while True:
            if child.process.poll() is not None:
                raise RuntimeError(
                    f"the {child.name} exited with code {child.process.returncode}:\n"
                    f"{child.log_tail()}"
                )
            try:
                if client.get(url).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the {child.name} did not answer {url} within {timeout:g} s:\n"
                    f"{child.log_tail()}"
                )
            time.sleep(0.1)
