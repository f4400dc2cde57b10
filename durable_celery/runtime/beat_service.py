"""The tick, run inside the beat process: one daemon thread per Durable instance.

Why beat. The tick recovers expired leases, re-dispatches lost messages, wakes due waits and
times out executions. Run as a Celery task, it queued behind the steps it exists to rescue: with
every worker slot busy on long steps, tick messages expired unprocessed and recovery, timers and
timeouts stopped exactly when they were needed. Beat is the one process that never runs user
code, so a tick run there keeps going however saturated the workers are, and no tick task shows
up in Flower or in the worker logs.

Why a thread, started on ``beat_init``, rather than an entry in the beat scheduler:

- It works with whatever scheduler beat runs (the default shelve file, django-celery-beat,
  RedBeat...): a scheduler entry can only *publish* a task, and running code in-process would
  mean a custom scheduler class that users of another scheduler could not use.
- A tick that blocks (a database that hangs, a broker publish retrying) blocks only this thread,
  never the user's own periodic tasks in beat's loop.
- ``beat_init`` is sent by ``celery.beat.Service.start`` in every way beat runs: ``celery beat``,
  the process ``celery worker -B`` forks, and the threaded embedded service. (``beat_embedded_init``
  follows it only in the forked one, so it is not needed; ``start`` is idempotent anyway.)

Failures (database or broker down, a schema not migrated yet) are logged and tried again the next
interval; the thread never dies and never takes beat down. It stops when beat stops: at
interpreter exit (``atexit``: an in-flight tick gets a few seconds to finish), or as soon as an
in-process ``Service.stop()`` is seen. A tick cut short anywhere is safe: each sweep commits its
rows in one transaction, and a message lost after a commit is re-dispatched later.

Two beats at once are safe, since every sweep locks its rows ``FOR UPDATE SKIP LOCKED``.

After a database outage it saw (a tick that failed with ``DatabaseUnavailable``), the tick
treats no lease as expired for :data:`LEASE_GRACE` seconds from its first pass that reaches the
database again. The lease keepers of live workers could not renew during the outage, so their
leases may look expired; they retry every ``leases.RETRY_PAUSE`` and renew well within the
grace. A worker that died meanwhile loses its lease that much later.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
import time
from collections.abc import Callable

from durable_celery.errors import DatabaseUnavailable
from durable_celery.runtime.services import Services
from durable_celery.runtime.tick import tick
from durable_celery.state.heartbeats import BEAT, beat_txn

log = logging.getLogger(__name__)

#: At most one "still failing" line per this many seconds while the tick keeps failing.
REPORT_EVERY = 60.0
#: How long beat's exit waits for a tick in flight.
STOP_TIMEOUT = 5.0
#: After a database outage, seconds from the tick's first pass that reaches the database again
#: during which it treats no lease as expired (live workers renew theirs meanwhile).
LEASE_GRACE = 5.0


class TickService:
    """Calls ``tick(services)`` every ``settings.tick_interval`` seconds from a daemon thread,
    after ``prepare()`` (schema migrated or checked, workflows compiled) has succeeded."""

    def __init__(self, services: Services, prepare: Callable[[], None]) -> None:
        self._services = services
        self._prepare = prepare
        self._interval = services.settings.tick_interval
        self._name = f"durable-tick-{services.settings.prefix}"
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._stop = threading.Event()
        self._beat_stopping: threading.Event | None = None
        self._exit_hook = False

    def start(self, beat: object = None) -> None:
        """Start ticking in this process; a no-op while it already ticks here. ``beat`` is the
        ``celery.beat.Service`` that sent ``beat_init``: the thread also stops when it does."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
                return
            stopping = getattr(beat, "_is_shutdown", None)  # Service.stop() sets it (not public API)
            self._beat_stopping = stopping if isinstance(stopping, threading.Event) else None
            self._stop = threading.Event()
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
            if not self._exit_hook:
                atexit.register(self.stop)
                self._exit_hook = True
        log.info("durable: beat runs the tick of %r every %gs", self._services.settings.prefix, self._interval)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop ticking and wait up to ``timeout`` seconds for a tick in flight."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread() and self._pid == os.getpid():
            thread.join(timeout)

    def _stopping(self) -> bool:
        return self._stop.is_set() or (self._beat_stopping is not None and self._beat_stopping.is_set())

    def _record(self) -> None:
        """Note the tick in ``heartbeats``, for ``durable doctor`` (a run of ``tick`` elsewhere,
        such as ``doctor --fix`` or ``run_due``, is not a beat and records nothing)."""
        sv = self._services
        with sv.db.begin() as conn:
            beat_txn(conn, BEAT, sv.clock.now(), f"{socket.gethostname()}:{os.getpid()}")

    def _run(self) -> None:
        failures = 0
        reported = 0.0
        due = time.monotonic()
        outage = False  # a tick failed on an unreachable database, and none has reached it since
        grace_until = 0.0
        while not self._stopping():
            try:
                self._prepare()  # once: schema migrated (or checked), workflows compiled
                if outage:
                    grace_until = time.monotonic() + LEASE_GRACE
                    outage = False
                tick(self._services, expire_leases=time.monotonic() >= grace_until)
                self._record()
            except Exception as exc:
                if isinstance(exc, DatabaseUnavailable):
                    outage = True
                failures += 1
                now = time.monotonic()
                if failures == 1:
                    log.warning("durable: tick failed; trying again every %gs", self._interval, exc_info=True)
                    reported = now
                elif now - reported >= REPORT_EVERY:
                    log.warning("durable: tick still failing (%d attempts): %r", failures, exc)
                    reported = now
            else:
                if failures:
                    log.warning("durable: tick works again after %d failed attempts", failures)
                    failures = 0
            # A fixed rate; a tick that overran its interval is followed at once, with no backlog.
            due = max(due + self._interval, time.monotonic())
            self._stop.wait(due - time.monotonic())
