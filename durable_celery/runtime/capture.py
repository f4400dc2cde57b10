"""Capturing what a step logs and prints, per attempt.

Steps may run side by side in one process (Celery's ``threads``, ``gevent`` and ``eventlet``
pools), so nothing here is swapped per step. Instead, two hooks are installed once per process:

- a stdout proxy (``sys.stdout``) that forwards every write to the stream it wraps and, inside a
  step, also collects the text into that step's entries;
- a logging handler on the root logger that appends records to the current step's entries.

Which step is "current" is a ``ContextVar``, so it follows threads, greenlets and asyncio tasks.

``sys.stdout`` belongs to the process, not to us: the proxy wraps whatever it is when the first
step starts (in a worker, Celery's ``LoggingProxy``). If something replaces it later (pytest's
capture, a late Celery redirect), we do not fight it while a step runs; the next step to start
wraps the new stream in a new proxy. A step's own ``contextlib.redirect_stdout`` therefore wins
while it lasts (what it prints goes to its buffer, not to the logs; being process-wide, on a
threads pool it also takes the other steps' prints meanwhile). A write is collected once,
even through chained proxies or a wrapped stream that logs it (Celery's ``LoggingProxy``).

What one attempt keeps is bounded (``Durable(log_capture_max_entries=..., log_capture_max_chars=...)``,
set for the steps a task runs with :func:`limits`): a message longer than the bound is cut and
ends with ``... [N more characters truncated]``; past the number of entries, one last entry (level
``WARNING``, logger ``durable_celery.capture``) says how many more were dropped.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

#: the defaults of ``log_capture_max_entries`` and ``log_capture_max_chars``
MAX_ENTRIES = 500
MAX_MESSAGE = 4000
#: the logger named by the entry that says how many entries were dropped
MARKER_LOGGER = "durable_celery.capture"
#: Loggers of the engine and its stack: their records are not the step's own output.
ENGINE_LOGGERS = ("durable_celery", "celery", "kombu", "amqp", "sqlalchemy")


@dataclass(frozen=True)
class Limits:
    """How much one attempt keeps: entries (then one marker entry), characters per message."""

    max_entries: int = MAX_ENTRIES
    max_chars: int = MAX_MESSAGE


class _Collector:
    """One step attempt's entries, plus the printed text not yet ended by a newline."""

    def __init__(self, limits: Limits) -> None:
        self.entries: list[dict[str, Any]] = []
        self._limits = limits
        self._partial = ""
        self._partial_cut = 0  # characters of the pending printed line beyond max_chars
        self._dropped = 0
        self._marker: dict[str, Any] | None = None
        self._lock = threading.Lock()  # a step may share its context with its own threads or tasks

    def add(self, at: datetime, level: str, logger: str, message: str) -> None:
        with self._lock:
            self._add(at, level, logger, message)

    def write(self, text: str) -> None:
        with self._lock:
            *lines, rest = text.split("\n")
            for line in lines:
                self._extend_partial(line)
                self._add(datetime.now(timezone.utc), "PRINT", "stdout", self._partial, self._partial_cut)
                self._partial, self._partial_cut = "", 0
            self._extend_partial(rest)

    def close(self) -> None:
        """Keep a last printed line that had no newline."""
        with self._lock:
            if self._partial:
                self._add(datetime.now(timezone.utc), "PRINT", "stdout", self._partial, self._partial_cut)
                self._partial, self._partial_cut = "", 0

    def _extend_partial(self, piece: str) -> None:
        room = max(0, self._limits.max_chars - len(self._partial))
        self._partial += piece[:room]
        self._partial_cut += max(0, len(piece) - room)

    def _add(self, at: datetime, level: str, logger: str, message: str, cut: int = 0) -> None:
        if len(self.entries) - (self._marker is not None) >= self._limits.max_entries:
            self._drop(at)
            return
        if len(message) > self._limits.max_chars:
            cut += len(message) - self._limits.max_chars
            message = message[:self._limits.max_chars]
        if cut:
            message += f" ... [{cut} more characters truncated]"
        self.entries.append({"at": at.isoformat(), "level": level, "logger": logger, "message": message})

    def _drop(self, at: datetime) -> None:
        """Count an entry past the bound on the marker entry, the last one (kept up to date in
        place: the list may be read before the attempt's capture closes)."""
        self._dropped += 1
        if self._marker is None:
            self._marker = {"at": at.isoformat(), "level": "WARNING", "logger": MARKER_LOGGER, "message": ""}
            self.entries.append(self._marker)
        noun = "entry" if self._dropped == 1 else "entries"
        self._marker["message"] = (f"... {self._dropped} more {noun} dropped "
                                   f"(log_capture_max_entries={self._limits.max_entries})")


_current: ContextVar[_Collector | None] = ContextVar("durable_capture", default=None)
_limits: ContextVar[Limits | None] = ContextVar("durable_capture_limits", default=None)  # None: the defaults
#: Set while a proxy forwards a write, so a proxy further down the chain does not collect it again.
_forwarding: ContextVar[bool] = ContextVar("durable_capture_forwarding", default=False)


class _StdoutProxy:
    """Stands in for ``sys.stdout``: forwards to the wrapped stream, and collects in a step."""

    def __init__(self, target: Any) -> None:
        self.target = target

    def write(self, text: str) -> int:
        collector = _current.get()
        if collector is not None and not _forwarding.get() and isinstance(text, str):
            collector.write(text)
        if self.target is None:  # no stream at all (pythonw, a closed stdout)
            return len(text)
        token = _forwarding.set(True)
        try:
            self.target.write(text)
        finally:
            _forwarding.reset(token)
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self.target is not None:
            self.target.flush()

    def isatty(self) -> bool:
        return bool(self.target is not None and self.target.isatty())

    def fileno(self) -> int:
        if self.target is None:
            raise OSError("stdout has no file descriptor")
        return int(self.target.fileno())

    @property
    def encoding(self) -> str:
        return str(getattr(self.target, "encoding", None) or "utf-8")

    @property
    def errors(self) -> str | None:
        return getattr(self.target, "errors", None)

    def __getattr__(self, name: str) -> Any:  # buffer, name, mode, closed, reconfigure...
        if self.target is None:
            raise AttributeError(name)
        return getattr(self.target, name)


class _StepLogHandler(logging.Handler):
    """On the root logger: appends records to the collector of the current context, if any."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)

    def emit(self, record: logging.LogRecord) -> None:
        collector = _current.get()
        if collector is None or _forwarding.get() or _is_engine(record.name):
            return  # _forwarding: a print the wrapped stream turns into a record (already collected)
        try:
            message = record.getMessage()
        except Exception:  # a broken %-format in user code must not fail the step
            message = str(record.msg)
        collector.add(datetime.fromtimestamp(record.created, timezone.utc), record.levelname, record.name, message)


def _is_engine(name: str) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in ENGINE_LOGGERS)


_handler = _StepLogHandler()
_install_lock = threading.Lock()


def install() -> None:
    """Put the stdout proxy and the log handler in place (idempotent, thread-safe, cheap)."""
    root = logging.getLogger()
    if isinstance(sys.stdout, _StdoutProxy) and _handler in root.handlers:
        return
    with _install_lock:
        current = sys.stdout
        if not isinstance(current, _StdoutProxy):
            sys.stdout = _StdoutProxy(current)
        if _handler not in root.handlers:  # logging setup (Celery's, dictConfig) may clear them
            root.addHandler(_handler)


@contextlib.contextmanager
def limits(max_entries: int, max_chars: int) -> Iterator[None]:
    """The bounds of the attempts captured in this context (an engine task sets its engine's)."""
    token = _limits.set(Limits(max_entries, max_chars))
    try:
        yield
    finally:
        _limits.reset(token)


@contextlib.contextmanager
def capture_output() -> Iterator[list[dict[str, Any]]]:
    """Collect what the current context logs and prints into the yielded list, within the
    context's :func:`limits`."""
    install()
    collector = _Collector(_limits.get() or Limits())
    token = _current.set(collector)
    try:
        yield collector.entries
    finally:
        _current.reset(token)
        collector.close()
