"""Structured logs: one JSON object per line, no secrets and no payloads."""

from __future__ import annotations

import atexit
import logging
import sys
import threading
from datetime import UTC, datetime
from typing import TextIO

import orjson

_FIELDS = ("source", "delivery_id", "topic", "outcome", "status", "reason")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


class BufferedLineHandler(logging.Handler):
    """Formats each record into a line at once and writes the lines in bulk.

    A line per delivery written with its own system call (and its own wake-up of a writer
    thread) cost a fifth of the service's throughput. Lines are kept in memory and written
    together every `interval` seconds by a background thread, at once for a warning or worse,
    when `max_lines` are waiting, and at close. A crash loses at most the last `interval`
    seconds of lines; never anything stored (deliveries are in the database before any line).

    Closing writes what waits and stops the thread, but a record that still arrives afterwards
    starts it again: uvicorn's logging set-up (`logging.config.dictConfig`) closes every
    existing handler while leaving this one attached to its logger, and lines must keep
    reaching the stream within `interval` after that too.
    """

    def __init__(self, stream: TextIO, interval: float = 0.2, max_lines: int = 2000) -> None:
        super().__init__()
        self.stream = stream
        self.interval = interval
        self.max_lines = max_lines
        self._lines: list[str] = []
        self._lines_lock = threading.Lock()
        self._stop = threading.Event()
        self._closed = False
        self._thread = self._start_thread()

    def _start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, name="shoppulse-log", daemon=True)
        thread.start()
        return thread

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        with self._lines_lock:
            self._lines.append(line)
            waiting = len(self._lines)
            reopen = self._closed
            self._closed = False
        if reopen:  # closed, but still attached: write on time again
            self._thread.join()
            self._stop = threading.Event()
            self._thread = self._start_thread()
        if record.levelno >= logging.WARNING or waiting >= self.max_lines:
            self.flush()

    def flush(self) -> None:
        with self._lines_lock:
            lines, self._lines = self._lines, []
        if lines:
            try:
                self.stream.write("\n".join(lines) + "\n")
                self.stream.flush()
            except (OSError, ValueError):  # stderr closed or gone: nothing else to tell
                pass

    def _run(self) -> None:
        stop = self._stop
        while not stop.wait(self.interval):
            self.flush()

    def close(self) -> None:
        with self._lines_lock:
            self._closed = True
        self._stop.set()
        self.flush()
        super().close()


def flush_logs() -> None:
    """Write every line still waiting in the service's handlers.

    The service calls this as the last step of its shutdown: uvicorn stops on SIGTERM or
    Ctrl-C by re-raising the signal after the shutdown, which ends the process without running
    `atexit` handlers, so a line still waiting then would be lost.
    """
    for handler in logging.getLogger("shoppulse").handlers:
        handler.flush()


def configure_logging(level: str = "info") -> None:
    """JSON lines on stderr, written in bulk (see `BufferedLineHandler`)."""
    handler = BufferedLineHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    atexit.register(handler.close)
    # Records need no caller, thread or process names (the JSON line has none of them), and
    # finding them costs more than formatting the line.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger("shoppulse")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
