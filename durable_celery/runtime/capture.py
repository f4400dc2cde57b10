"""Capturing what a step logs and prints, per attempt."""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

MAX_ENTRIES = 500
MAX_MESSAGE = 4000


class _StepLogHandler(logging.Handler):
    def __init__(self, thread_id: int) -> None:
        super().__init__(logging.DEBUG)
        self.thread_id = thread_id
        self.entries: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.thread_id or len(self.entries) >= MAX_ENTRIES:
            return
        if record.name.startswith(("durable_celery", "celery", "kombu", "amqp", "sqlalchemy")):
            return
        try:
            message = record.getMessage()[:MAX_MESSAGE]
        except Exception:  # a broken %-format in user code must not fail the step
            message = str(record.msg)[:MAX_MESSAGE]
        self.entries.append({
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname, "logger": record.name, "message": message,
        })


class _Tee(io.TextIOBase):
    """Collects what the step prints (this thread only) and still forwards it."""

    def __init__(self, target: Any, handler: _StepLogHandler) -> None:
        self._target = target
        self._handler = handler
        self._buffer = ""

    def write(self, text: str) -> int:
        if threading.get_ident() == self._handler.thread_id:
            self._buffer += text
            while "\n" in self._buffer:
                line, self._buffer = self._buffer.split("\n", 1)
                self._add(line)
        return self._target.write(text) if self._target is not None else len(text)

    def flush(self) -> None:
        if self._target is not None:
            self._target.flush()

    def close_line(self) -> None:
        if self._buffer:
            self._add(self._buffer)
            self._buffer = ""

    def _add(self, line: str) -> None:
        if len(self._handler.entries) < MAX_ENTRIES:
            self._handler.entries.append({"at": datetime.now(UTC).isoformat(), "level": "PRINT",
                                          "logger": "stdout", "message": line[:MAX_MESSAGE]})


@contextlib.contextmanager
def capture_output() -> Iterator[list[dict[str, Any]]]:
    """Collect log records and printed lines of the current thread into the yielded list."""
    handler = _StepLogHandler(threading.get_ident())
    root = logging.getLogger()
    root.addHandler(handler)
    tee = _Tee(sys.stdout, handler)
    previous = sys.stdout
    sys.stdout = tee
    try:
        yield handler.entries
    finally:
        sys.stdout = previous
        tee.close_line()
        root.removeHandler(handler)
