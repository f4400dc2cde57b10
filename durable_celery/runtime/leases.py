"""Heart-beating the leases a worker process holds, from one background thread per process."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from datetime import timedelta

from durable_celery.clock import Clock
from durable_celery.state.db import Database
from durable_celery.state.executions import renew_leases_txn

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Renews every lease held in this process each ``interval`` seconds, so a live worker's
    long step is never taken over, and a dead worker's lease expires after ``timeout``."""

    def __init__(self, db: Database, clock: Clock, interval: float, timeout: float) -> None:
        self._db = db
        self._clock = clock
        self._interval = interval
        self._timeout = timedelta(seconds=timeout)
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._stop = threading.Event()

    def lease_until(self) -> object:
        return self._clock.now() + self._timeout

    def hold(self, token: str) -> None:
        with self._lock:
            self._held.add(token)
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                # A forked child inherits the set but not the thread.
                self._pid = os.getpid()
                self._held = {token}
                self._stop = threading.Event()
                self._thread = threading.Thread(target=self._run, name="durable-heartbeat", daemon=True)
                self._thread.start()

    def release(self, token: str) -> None:
        with self._lock:
            self._held.discard(token)

    def _run(self) -> None:
        stop: Callable[[float], bool] = self._stop.wait
        while not stop(self._interval):
            with self._lock:
                tokens = sorted(self._held)
            if not tokens:
                continue
            try:
                with self._db.begin() as conn:
                    renew_leases_txn(conn, tokens, self._clock.now() + self._timeout)
            except Exception:  # the next beat tries again; a missed one only shortens the lease
                log.warning("durable: lease heartbeat failed", exc_info=True)
