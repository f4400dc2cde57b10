"""``Durable.cleanup``: delete finished executions older than a cutoff, batch by batch.

Each batch is its own short transaction (``state/retention.py``), so running workflows never
wait on it: it takes only the rows it deletes, with ``SKIP LOCKED``, and commits. Bad arguments
raise ``InvalidInput`` before anything is read or deleted.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from durable_celery.clock import Clock
from durable_celery.durations import Duration, to_seconds
from durable_celery.engine.statuses import TERMINAL, ExecutionStatus
from durable_celery.errors import InvalidInput
from durable_celery.state.db import Database
from durable_celery.state.retention import broadcast_horizon_txn, cleanup_batch_txn, cleanup_broadcasts_txn

#: the largest batch: bigger ones hold their locks (and the rows' index pages) too long
MAX_BATCH = 100_000
FINISHED = tuple(sorted(s.value for s in TERMINAL))


@dataclass(frozen=True)
class CleanupReport:
    """What ``cleanup`` deleted (with ``dry_run``, what it would delete).

    ``executions`` counts every row, branches and foreach iterations included; ``workflows`` only
    the top-level executions among them. ``batches`` is the number of transactions that deleted
    something. ``cutoff``: executions completed before it were candidates."""

    cutoff: datetime
    statuses: tuple[str, ...]
    dry_run: bool
    workflows: int = 0
    executions: int = 0
    attempts: int = 0
    waits: int = 0
    events: int = 0
    broadcasts: int = 0
    batches: int = 0
    seconds: float = 0.0


def check_statuses(statuses: Iterable[Any] | None) -> tuple[str, ...]:
    """The final statuses to clean up (all of them for ``None``); ``InvalidInput`` otherwise."""
    if statuses is None:
        return FINISHED
    if isinstance(statuses, (str, bytes)) or not isinstance(statuses, Iterable):
        raise InvalidInput(f"statuses must be a list of final statuses, got {statuses!r}")
    chosen = []
    for status in statuses:
        try:
            value = ExecutionStatus(status)
        except ValueError:
            raise InvalidInput(f"unknown status {status!r}; one of {list(FINISHED)}") from None
        if value not in TERMINAL:
            raise InvalidInput(f"only finished executions are cleaned up; {value.value!r} is not final "
                               f"(one of {list(FINISHED)})")
        chosen.append(value.value)
    if not chosen:
        raise InvalidInput("statuses is empty: give at least one final status, or None for all of them")
    return tuple(sorted(set(chosen)))


def check_batch_size(batch_size: Any) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= MAX_BATCH:
        raise InvalidInput(f"batch_size must be an integer from 1 to {MAX_BATCH}, got {batch_size!r}")
    return batch_size


def cleanup(db: Database, clock: Clock, older_than: Duration, statuses: Iterable[Any] | None, batch_size: int,
            dry_run: bool) -> CleanupReport:
    """Delete (or count) finished executions completed more than ``older_than`` ago; see
    ``Durable.cleanup``."""
    age = to_seconds(older_than, "older_than")
    chosen = check_statuses(statuses)
    size = check_batch_size(batch_size)
    if not isinstance(dry_run, bool):
        raise InvalidInput(f"dry_run must be True or False, got {dry_run!r}")
    began = time.monotonic()
    cutoff = clock.now() - timedelta(seconds=age)
    totals = dict(workflows=0, executions=0, attempts=0, waits=0, events=0, broadcasts=0, batches=0)
    after: tuple[datetime, str] | None = None
    while True:
        with db.begin() as conn:
            removed = cleanup_batch_txn(conn, cutoff, chosen, after, size, dry_run)
        if removed.last is None:
            break
        after = removed.last
        totals["batches"] += 1
        for key, value in (("workflows", removed.roots), ("executions", removed.executions),
                           ("attempts", removed.attempts), ("waits", removed.waits), ("events", removed.events)):
            totals[key] += value
    with db.connect() as conn:
        horizon = broadcast_horizon_txn(conn, cutoff)
    while True:
        with db.begin() as conn:
            gone = cleanup_broadcasts_txn(conn, horizon, size, dry_run)
        totals["broadcasts"] += gone
        if dry_run or gone < size:
            break
    seconds = time.monotonic() - began
    return CleanupReport(cutoff=cutoff, statuses=chosen, dry_run=dry_run, seconds=seconds, **totals)
