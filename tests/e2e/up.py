"""`shoppulse up` in a subprocess: started, waited for until it prints its summary, and stopped
with Ctrl-C (SIGINT) at the end, as a user does."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.dashboard.store import wait_for
from tests.e2e.server import service_env


@dataclass
class UpRun:
    process: subprocess.Popen[bytes]
    out_path: Path
    printed: str = ""
    code: int | None = None

    def output(self) -> str:
        return self.out_path.read_text(errors="replace")


@contextmanager
def running_up(command: Sequence[str], cwd: Path, *, start_timeout: float = 60) -> Iterator[UpRun]:
    """Run `command` until it says "Press Ctrl-C"; after the block, Ctrl-C it and keep its exit
    code (`run.code`) and everything it printed (`run.output()`)."""
    out_path = cwd / "up.out"
    with out_path.open("wb") as out:
        process = subprocess.Popen(
            list(command), cwd=cwd, env=service_env(), stdout=out, stderr=subprocess.STDOUT
        )
    run = UpRun(process, out_path)
    try:
        run.printed = wait_for(
            run.output,
            lambda text: "Press Ctrl-C" in text or process.poll() is not None,
            timeout=start_timeout,
        )
        assert process.poll() is None, run.printed
        yield run
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            run.code = process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
