"""Structured logs: one JSON object per line, written in bulk, in order, nothing lost at close."""

from __future__ import annotations

import io
import logging
import logging.config
import time

import orjson

from shoppulse.logs import BufferedLineHandler, JsonFormatter


def make_logger(
    stream: io.StringIO, interval: float = 60.0
) -> tuple[logging.Logger, BufferedLineHandler]:
    handler = BufferedLineHandler(stream, interval=interval, max_lines=5)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(f"shoppulse.test.{id(stream)}")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger, handler


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


def test_lines_wait_for_the_bulk_write_and_keep_their_order() -> None:
    stream = io.StringIO()
    logger, handler = make_logger(stream)
    logger.info("delivery %s", "stored", extra={"source": "acme", "delivery_id": "d1"})
    logger.info("delivery %s", "duplicate", extra={"source": "acme", "delivery_id": "d1"})
    assert stream.getvalue() == ""  # not yet written: the interval has not passed
    logger.warning("disk space low")  # a warning writes everything waiting, at once
    got = lines(stream)
    assert [line["message"] for line in got] == [
        "delivery stored",
        "delivery duplicate",
        "disk space low",
    ]
    assert got[0]["source"] == "acme" and got[0]["delivery_id"] == "d1"
    assert got[2]["level"] == "warning"
    handler.close()


def test_a_full_buffer_is_written_and_close_writes_the_rest() -> None:
    stream = io.StringIO()
    logger, handler = make_logger(stream)
    for i in range(7):
        logger.info("line %d", i)
    assert len(lines(stream)) == 5  # max_lines reached: written in one go
    handler.close()
    assert [line["message"] for line in lines(stream)] == [f"line {i}" for i in range(7)]


def test_the_background_thread_writes_after_the_interval() -> None:
    stream = io.StringIO()
    logger, handler = make_logger(stream, interval=0.05)
    logger.info("soon")
    for _ in range(100):
        if stream.getvalue():
            break
        handler._stop.wait(0.05)
    assert [line["message"] for line in lines(stream)] == ["soon"]
    handler.close()


def test_lines_keep_coming_on_time_after_a_logging_set_up_closes_the_handler() -> None:
    """uvicorn's dictConfig closes every handler and leaves ours attached to its logger."""
    stream = io.StringIO()
    logger, handler = make_logger(stream, interval=0.05)
    logging.config.dictConfig(
        {"version": 1, "disable_existing_loggers": False, "loggers": {"uvicorn": {}}}
    )
    logger.info("after the set-up")
    for _ in range(100):
        if stream.getvalue():
            break
        time.sleep(0.05)
    assert [line["message"] for line in lines(stream)] == ["after the set-up"]
    handler.close()
