"""Riding out a database outage in a worker (docs/reliability.md, "When PostgreSQL goes away").

What a worker does when the database cannot be reached (``DatabaseUnavailable``) depends on
what it holds:

* **A message it has not claimed** holds nothing: the step task hands it back to the broker
  with Celery's ``retry`` (a copy on the same queue, with a short countdown, and the original
  acked), so no worker slot waits on the outage and no message is dropped
  (:func:`claim_countdown`).
* **A step that ran** holds its outcome, in memory only, and the lease. Its checkpoint is tried
  again on a short back-off (:func:`patiently`) for up to :data:`CHECKPOINT_PATIENCE`, while the
  lease keeper keeps heart-beating. The fence (``seq`` and the lease token) makes a late try
  safe: if the lease was taken over meanwhile, the try writes nothing. A try whose commit
  reached the database but whose answer was lost is recognised on the next try, by its attempt
  row (``state/steps.py`` ``attempt_recorded_txn``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from durable_celery.errors import DatabaseUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How long a finished step's checkpoint is tried again while the database cannot be reached.
#: Not a safety bound (the fence is): the worker slot waits that long at most, then the outcome
#: is dropped and the step runs again once the lease is taken back.
CHECKPOINT_PATIENCE = 300.0
#: The back-off between tries: from the first pause, doubling, to the longest; the longest is
#: how late a checkpoint may see the database back.
FIRST_PAUSE = 0.05
MAX_PAUSE = 0.5
#: The countdown of a message handed back to the broker: the first, doubling per retry of that
#: message, up to the longest (how late an unclaimed message may see the database back).
FIRST_COUNTDOWN = 0.25
MAX_COUNTDOWN = 2.0


def patiently(call: Callable[[bool], T], what: str, patience: float = CHECKPOINT_PATIENCE,
              sleep: Callable[[float], None] = time.sleep) -> T:
    """``call(retried)`` until it raises no ``DatabaseUnavailable``, for up to ``patience``
    seconds, on a short back-off; ``retried`` tells a try from the first. ``what`` names it in
    the logs. Any other error is raised at once; after ``patience`` the last
    ``DatabaseUnavailable`` is raised."""
    deadline = time.monotonic() + patience
    pause = FIRST_PAUSE
    failures = 0
    while True:
        try:
            result = call(failures > 0)
        except DatabaseUnavailable as exc:
            failures += 1
            if time.monotonic() + pause > deadline:
                log.error("durable: %s: the database stayed away for %gs; giving up", what, patience)
                raise
            if failures == 1:
                log.warning("durable: %s: %s; trying again for up to %gs", what, exc, patience)
            sleep(pause)
            pause = min(pause * 2, MAX_PAUSE)
            continue
        if failures:
            log.warning("durable: %s: done after %d tries", what, failures + 1)
        return result


def claim_countdown(retries: int) -> float:
    """The countdown of an unclaimed message handed back to the broker for the ``retries``-th time."""
    return float(min(FIRST_COUNTDOWN * 2 ** min(retries, 16), MAX_COUNTDOWN))
