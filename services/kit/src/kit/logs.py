"""JSON logs: every line carries the service and, while a message or a request is handled,
its ids: event_id, correlation_id (the order), trace_id, and span_id while a span records."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TextIO

from pythonjsonlogger.json import JsonFormatter

_context: ContextVar[dict[str, str]] = ContextVar("log_context", default={})  # noqa: B039


@contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Adds fields (event_id, correlation_id, trace_id, ...) to every log line inside."""
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v}})
    try:
        yield
    finally:
        _context.reset(token)


class _ContextFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        for name, value in _context.get().items():
            setattr(record, name, value)
        return True


def json_handler(service: str, stream: TextIO) -> logging.Handler:
    """One JSON object a line, with the service and the context's ids as fields."""
    handler = logging.StreamHandler(stream)
    handler.addFilter(_ContextFilter(service))
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    )
    return handler


def configure_logging(service: str, level: str = "INFO") -> None:
    root = logging.getLogger()
    root.handlers[:] = [json_handler(service, sys.stdout)]
    root.setLevel(level.upper())
    # aiokafka logs every reconnect attempt at ERROR; keep its noise at WARNING and up.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


def uvicorn_log_config() -> dict[str, Any]:
    """Let uvicorn log through the root handler instead of its own text handlers."""
    return {"version": 1, "disable_existing_loggers": False}
