"""Reads that every open page shares for a while: the aggregates that scan a whole table
(counts by status, the workflow summaries).

A value is kept for ``SHARE`` times as long as reading it took (at least ``floor`` seconds, at
most ``MAX_HOLD``): on a small table that is a few milliseconds, so pages stay exact; on a table
of a million executions, where a count takes most of a second, the database spends at most
about 1/``SHARE`` of its time on them, however many pages refresh. A page served a kept value
may show it a little stale: so that it does not stay so, ``nudge`` is called once the value
expires (the dashboard then tells its open pages to refresh).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

#: a value is kept this many times as long as reading it took
SHARE = 20.0
#: and never longer than this (seconds)
MAX_HOLD = 30.0


@dataclass(frozen=True)
class _Kept:
    at: float
    value: Any
    hold: float


class SharedReads:
    """Values read once and served to every page until they expire (see the module docstring)."""

    def __init__(self, nudge: Callable[[], None]) -> None:
        self._nudge = nudge
        self._kept: dict[str, _Kept] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self._nudge_due: float | None = None

    def read(self, key: str, fetch: Callable[[], T], *, floor: float = 0.0, nudge: bool = True) -> T:
        """``fetch()``, or the value kept under ``key`` while it is fresh. With ``nudge``, a
        kept value served makes the open pages refresh once it has expired. One lock per key: a
        slow read holds back only the pages waiting for the same value."""
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            kept = self._kept.get(key)
            now = time.monotonic()
            if kept is not None and now - kept.at < kept.hold:
                if nudge:
                    self._nudge_after(kept.at + kept.hold - now)
                return kept.value  # type: ignore[no-any-return]
            value = fetch()
            took = time.monotonic() - now
            self._kept[key] = _Kept(time.monotonic(), value, min(MAX_HOLD, max(floor, SHARE * took)))
            return value

    def _nudge_after(self, delay: float) -> None:
        """One nudge ``delay`` seconds from now, unless one is already due by then."""
        due = time.monotonic() + delay
        with self._lock:
            if self._nudge_due is not None and self._nudge_due <= due + 0.05 and self._nudge_due > time.monotonic():
                return
            self._nudge_due = due
        timer = threading.Timer(delay + 0.05, self._nudge)
        timer.daemon = True
        timer.start()
