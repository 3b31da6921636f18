"""Structured logs: one JSON object per line, no secrets and no payloads."""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import sys
from datetime import UTC, datetime

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


def configure_logging(level: str = "info") -> None:
    """JSON lines on stderr, written by a background thread.

    The request path only formats its line and queues it: writing (a system call per line)
    happens on the listener thread, so a busy endpoint never waits on the terminal or a pipe.
    Lines queued at exit are written by the `atexit` hook that stops the listener.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))  # the line is formatted when queued
    lines: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    queued = logging.handlers.QueueHandler(lines)
    queued.setFormatter(JsonFormatter())
    listener = logging.handlers.QueueListener(lines, handler)
    listener.start()
    atexit.register(listener.stop)
    # Records need no caller, thread or process names (the JSON line has none of them), and
    # finding them costs more than formatting the line.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger("shoppulse")
    root.handlers[:] = [queued]
    root.setLevel(level.upper())
    root.propagate = False
