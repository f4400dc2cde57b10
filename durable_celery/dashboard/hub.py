"""One subscription to the engine's live events per dashboard, fanned out to every open page.

Each page's event stream is a queue fed by one background thread that iterates
``Durable.subscribe``: a hundred open pages cost the database one listening connection, not a
hundred. The thread starts with the first page and stops ``IDLE_STOP`` seconds after the last
one leaves (so the engine stops writing events nobody reads). A page only needs to know that
something it shows changed: a page whose queue is full misses events, not the refresh.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from durable_celery.models import LifecycleEvent

if TYPE_CHECKING:
    from durable_celery.durable import Durable

log = logging.getLogger(__name__)

#: seconds the thread keeps listening after the last page left
IDLE_STOP = 30.0
#: seconds one subscription waits for an event before the thread looks at its pages again
POLL = 2.0
#: events kept for a page that has not read them yet
QUEUE_SIZE = 256


@dataclass(eq=False)
class Watcher:
    """One open page's stream: the events of ``execution_id`` (all, when None)."""

    execution_id: str | None
    #: the events it wants; None: refresh anyway (a shared value it was shown has expired)
    events: queue.Queue[LifecycleEvent | None] = field(default_factory=lambda: queue.Queue(QUEUE_SIZE))

    def wants(self, event: LifecycleEvent) -> bool:
        return self.execution_id is None or event.execution_id == self.execution_id


class EventHub:
    """Fans the events of one ``Durable.subscribe`` out to the watchers of open pages."""

    def __init__(self, durable: Durable) -> None:
        self.durable = durable
        self._watchers: set[Watcher] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._last_left = time.monotonic()
        self._stopping = threading.Event()

    @property
    def listening(self) -> bool:
        """Is the subscription's thread running?"""
        with self._lock:
            return self._thread is not None and self._thread.is_alive()

    def join(self, execution_id: str | None = None) -> Watcher:
        watcher = Watcher(execution_id)
        with self._lock:
            self._watchers.add(watcher)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="durable-dashboard-events", daemon=True)
                self._thread.start()
        return watcher

    def leave(self, watcher: Watcher) -> None:
        with self._lock:
            self._watchers.discard(watcher)
            if not self._watchers:
                self._last_left = time.monotonic()

    def stop(self, timeout: float = 10.0) -> None:
        """End the subscription (within ``POLL`` seconds) and wait for its thread."""
        self._stopping.set()
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _idle(self) -> bool:
        """Stopped, or no page for ``IDLE_STOP`` seconds: the thread ends (under the lock, so a
        page that joins meanwhile starts a new one)."""
        with self._lock:
            if not self._stopping.is_set() and (self._watchers or time.monotonic() - self._last_left < IDLE_STOP):
                return False
            self._thread = None
            return True

    def _run(self) -> None:
        after: int | None = None
        while not self._idle():
            try:
                subscription = self.durable.subscribe(after=after, timeout=POLL)
                try:
                    for event in subscription:
                        after = event.id
                        self._deliver(event)
                        if self._stopping.is_set():
                            break
                finally:
                    subscription.close()
            except Exception:  # noqa: BLE001 - the database may be away: pages keep their last view
                log.warning("durable dashboard: live events unavailable, retrying", exc_info=True)
                time.sleep(POLL)

    def nudge(self) -> None:
        """Tell every open page to refresh (no event: a value it was shown may be stale)."""
        self._deliver(None)

    def _deliver(self, event: LifecycleEvent | None) -> None:
        with self._lock:
            watchers = [w for w in self._watchers if event is None or w.wants(event)]
        for watcher in watchers:
            try:
                watcher.events.put_nowait(event)
            except queue.Full:
                pass
