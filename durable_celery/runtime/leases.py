"""Heart-beating the leases a worker process holds, from one background thread per process."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import timedelta

from durable_celery.clock import Clock
from durable_celery.state.db import Database
from durable_celery.state.executions import renew_leases_txn

log = logging.getLogger(__name__)

#: After a failed beat (the database away), the next one comes this soon (or at the interval).
RETRY_PAUSE = 0.5


class LeaseKeeper:
    """Renews every lease held in this process each ``interval`` seconds, so a live worker's
    long step is never taken over, and a dead worker's lease expires after ``timeout``.

    A lease taken from a message (handed over by the previous checkpoint, not claimed) is short
    and not yet marked started: it is renewed, and so marked, once its step has run for
    ``confirm_after`` seconds. A step shorter than that never costs a write here."""

    def __init__(self, db: Database, clock: Clock, interval: float, timeout: float, confirm_poll: float) -> None:
        self._db = db
        self._confirm_poll = confirm_poll
        self._clock = clock
        self._interval = interval
        #: the pause before another beat after a failed one
        self._retry_pause = min(interval, RETRY_PAUSE)
        self._timeout = timedelta(seconds=timeout)
        self._held: set[str] = set()
        #: leases taken from a message: token -> when (monotonic) to renew and mark it started
        self._unconfirmed: dict[str, float] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._stop = threading.Event()

    def lease_until(self) -> object:
        return self._clock.now() + self._timeout

    def hold(self, token: str, confirm_after: float | None = None) -> None:
        """Keep ``token``'s lease alive until ``release``; ``confirm_after``: a lease taken
        from a message, to renew (and mark started) after that many seconds."""
        with self._lock:
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                # A forked child inherits the sets but not the thread.
                self._pid = os.getpid()
                self._held = set()
                self._unconfirmed = {}
                self._stop = threading.Event()
                self._thread = threading.Thread(target=self._run, name="durable-heartbeat", daemon=True)
                self._thread.start()
            self._held.add(token)
            if confirm_after is not None:
                self._unconfirmed[token] = time.monotonic() + confirm_after

    def release(self, token: str) -> None:
        with self._lock:
            self._held.discard(token)
            self._unconfirmed.pop(token, None)

    def _run(self) -> None:
        stop: Callable[[float], bool] = self._stop.wait
        # Wakes every ``confirm_poll`` seconds to confirm leases taken from messages in time; a
        # wake with nothing due costs no query.
        poll = min(self._interval, self._confirm_poll, self._retry_pause)
        next_beat = time.monotonic() + self._interval
        failing = 0
        while not stop(poll):
            now = time.monotonic()
            with self._lock:
                if now >= next_beat:
                    tokens = sorted(self._held)
                    self._unconfirmed.clear()
                else:
                    tokens = sorted(t for t, due in self._unconfirmed.items() if due <= now)
                    for token in tokens:
                        del self._unconfirmed[token]
            if now >= next_beat:
                next_beat = now + self._interval
            if not tokens:
                continue
            try:
                at = self._clock.now()
                with self._db.begin() as conn:
                    renew_leases_txn(conn, tokens, at, at + self._timeout)
            except Exception:  # noqa: BLE001 - a missed beat only shortens the leases: try again soon
                if not failing:
                    log.warning("durable: lease heartbeat failed; trying again every %gs", self._retry_pause,
                                exc_info=True)
                failing += 1
                # The leases' expiry was not pushed: beat again soon, so that once the database is
                # back they are renewed within a pause (the tick's grace after an outage counts on it)
                next_beat = min(next_beat, now + self._retry_pause)
                continue
            if failing:
                log.warning("durable: lease heartbeat works again after %d failed beats", failing)
                failing = 0
