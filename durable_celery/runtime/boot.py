"""What a worker does with the engine when it boots (Celery's ``worker_init``).

Attaching the engine must change nothing for the workers that do not serve workflows:

- A worker started without ``-Q`` consumes what it consumed before the engine was attached:
  the engine's queues, which the engine declares on the app, are deselected for it.
- A worker whose queues include none of the engine's never touches the workflow database (and
  a broken workflows module only logs a warning there).
- A worker that serves the engine's queues loads the workflow definitions and migrates (or
  checks) the schema. A definition error or an out-of-date schema cannot fix itself: the worker
  refuses to start (exit code 78), as a broken deploy should. A database that cannot be reached
  can come back: the worker starts anyway, serves its other queues, logs the outage, and retries
  in the background until the database answers; steps that arrive meanwhile fail their claim and
  are re-dispatched by the tick's outbox once it is back.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy.exc import InterfaceError, OperationalError

from durable_celery.errors import DatabaseUnavailable
from durable_celery.runtime.broker import mend_consumer

log = logging.getLogger(__name__)

#: Longest pause between two attempts to reach the workflow database at boot.
MAX_RETRY_PAUSE = 30.0
#: What an unreachable database raises: through ``Database`` (DatabaseUnavailable), or raw
UNREACHABLE = (DatabaseUnavailable, OperationalError, InterfaceError)


class WorkerBoot:
    """The ``worker_init`` handler of one Durable instance on one app.

    Args:
        added_queues: the engine's queues it declared on the app (not the app's own).
        engine_queues: every queue engine steps may run on (after the workflows are loaded).
        load: imports and compiles the workflows (no database).
        ensure_schema: migrates or checks the schema (the database).
    """

    def __init__(self, added_queues: Iterable[str], engine_queues: Callable[[], set[str]],
                 load: Callable[[], None], ensure_schema: Callable[[], None]) -> None:
        self._added = list(added_queues)
        self._engine_queues = engine_queues
        self._load = load
        self._ensure_schema = ensure_schema
        self._stop = threading.Event()

    def on_worker_init(self, worker: Any) -> None:
        selection = worker.app.amqp.queues
        # `consume_from` lists every queue when no -Q was given; only the private selection
        # (None until -Q selects) tells the two apart (Celery 5.2 to 5.7 alike).
        if getattr(selection, "_consume_from", None) is None:  # no -Q: as before the engine came
            present = [name for name in self._added if name in selection]
            if present:
                selection.deselect(present)
            log.info("durable: this worker serves none of the engine's queues (start it with -Q %s for "
                     "workflows); it does not touch the workflow database", ",".join(self._added))
            return
        consumed = set(selection.consume_from)
        try:
            self._load()
        except Exception:
            if consumed & set(self._added):
                _refuse("its workflow definitions cannot be loaded")
            log.warning("durable: the workflow definitions cannot be loaded; this worker serves none of the "
                        "engine's queues, so it starts", exc_info=True)
            return
        if not consumed & self._engine_queues():
            log.info("durable: this worker serves none of the engine's queues; it does not touch the workflow "
                     "database")
            return
        mend_consumer(worker)  # survives a broker restart (see runtime/broker.py)
        try:
            self._ensure_schema()
        except UNREACHABLE:
            log.error("durable: the workflow database cannot be reached; this worker starts and retries in the "
                      "background (steps meanwhile are re-dispatched once it is back)", exc_info=True)
            threading.Thread(target=self._retry, name="durable-boot-retry", daemon=True).start()
        except Exception:
            _refuse("its schema or settings are wrong")

    def _retry(self) -> None:
        pause = 1.0
        while not self._stop.wait(pause):
            try:
                self._ensure_schema()
            except UNREACHABLE:
                pause = min(pause * 2, MAX_RETRY_PAUSE)
                continue
            except Exception:
                log.critical("durable: the workflow database answers, but its schema cannot be used",
                             exc_info=True)
                return
            log.warning("durable: the workflow database can be reached again")
            return


def _refuse(why: str) -> None:
    # Celery's signal dispatch would log and swallow an exception and start the worker anyway,
    # leaving a worker that fails every step; refuse to start instead.
    log.critical("durable: this worker cannot start: %s", why, exc_info=True)
    os._exit(78)  # EX_CONFIG
