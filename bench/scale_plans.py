"""The hot queries of ``bench.scale``, run through the engine's own state functions, timed and
explained.

A :class:`Probe` calls one state function the way the engine does (the tick's sweeps, a
worker's claim and checkpoint, the client's list and counts). :func:`capture` records the SQL
it sends to Postgres, parameters included, and :func:`explain` shows each statement's plan
twice, inside a transaction that is rolled back:

* ``EXPLAIN (ANALYZE, BUFFERS)`` with the values bound: the *custom* plan of the first
  executions;
* ``EXPLAIN EXECUTE`` of the statement prepared with ``plan_cache_mode = force_generic_plan``:
  the *generic* plan. psycopg prepares a statement it has run five times on a connection, and
  Postgres may then switch to a generic plan, which cannot see a parameter's value (a partial
  index whose predicate names a status matches only if the query writes that status literally).

A plan is on an index when neither names a ``Seq Scan`` of a big table.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import event, select
from sqlalchemy.engine import Connection

from durable_celery import Durable
from durable_celery.queue_limits import QueueLimits
from durable_celery.runtime.commit import snapshot
from durable_celery.runtime.tick import tick
from durable_celery.state import children, executions, journal, queues, schedules, steps, waits
from durable_celery.state.checkpoint import advance_txn, unsettled_txn
from durable_celery.state.tables import workflow_executions as t

#: tables whose sequential scan grows with history (schedules and queue rows stay small)
BIG_TABLES = ("workflow_executions", "step_executions", "waits", "events")
#: the controlled queue every probe engine declares, so the tick's queue sweep runs
LIMITED = QueueLimits(name="scale-limited", concurrency=5)
BATCH = 100
REDISPATCH = timedelta(seconds=30)
TOKEN = "scale-probe"


@dataclass(frozen=True)
class Sample:
    """What the per-execution probes act on: a waiting execution (its row, by id)."""

    execution_id: str
    row: Any
    now: datetime


@dataclass(frozen=True)
class Probe:
    name: str
    run: Callable[[Connection, Sample], object]
    #: part of the tick (timed one by one, and as a whole with :func:`time_tick`)
    sweep: bool = False


PROBES: tuple[Probe, ...] = (
    Probe("claim", lambda c, s: executions.claim_txn(c, s.execution_id, s.row["seq"], TOKEN, s.now,
                                                     s.now + timedelta(seconds=60))),
    Probe("checkpoint (advance)", lambda c, s: advance_txn(c, snapshot(s.row), TOKEN, {"updated_at": s.now})),
    Probe("lease heartbeat", lambda c, s: executions.renew_leases_txn(c, [TOKEN], s.now, s.now + timedelta(seconds=60))),
    Probe("waits of a visit", lambda c, s: waits.visit_waits_txn(c, s.execution_id, s.row["entered_seq"])),
    Probe("expired leases", lambda c, s: executions.take_expired_leases_txn(c, s.now, BATCH, TOKEN), sweep=True),
    Probe("unsettled blocks", lambda c, s: unsettled_txn(c, s.now, BATCH), sweep=True),
    Probe("dispatchable", lambda c, s: executions.take_dispatchable_txn(c, s.now, REDISPATCH, BATCH,
                                                                        [LIMITED.name]), sweep=True),
    Probe("due waits and timers", lambda c, s: waits.take_due_waits_txn(c, s.now, BATCH), sweep=True),
    Probe("parked compensations", lambda c, s: children.release_parked_compensations_txn(c, s.now, BATCH),
          sweep=True),
    Probe("unwoken callers", lambda c, s: journal.take_unwoken_callers_txn(c, s.now, BATCH, part=13), sweep=True),
    Probe("overdue", lambda c, s: executions.take_overdue_txn(c, s.now, BATCH), sweep=True),
    Probe("due schedules", lambda c, s: schedules.take_due_schedules_txn(c, s.now, BATCH), sweep=True),
    Probe("queue capacity", lambda c, s: queues.capacity_txn(c, LIMITED, s.now, REDISPATCH, BATCH), sweep=True),
    Probe("queue waiters", lambda c, s: queues.take_waiters_txn(c, LIMITED, s.now, REDISPATCH, BATCH), sweep=True),
    Probe("queue claim", lambda c, s: queues.claim_controlled_txn(c, LIMITED, s.execution_id, s.row["seq"], TOKEN,
                                                                  lambda: s.now, timedelta(seconds=60))),
    Probe("list executions (first page)", lambda c, s: executions.list_txn(
        c, workflow=None, status=None, queue=None, limit=50, offset=0)),
    Probe("list executions (by status)", lambda c, s: executions.list_txn(
        c, workflow=None, status="failed", queue=None, limit=50, offset=0)),
    Probe("list executions (rare status)", lambda c, s: executions.list_txn(
        c, workflow=None, status="compensated", queue=None, limit=50, offset=0)),
    Probe("count by status", lambda c, s: executions.count_by_status_txn(c)),
    Probe("step attempts of an execution", lambda c, s: steps.list_attempts_txn(c, s.execution_id)),
)


def sample(durable: Durable) -> Sample:
    """A waiting execution of the filled tables (the first by id)."""
    with durable.db.connect() as conn:
        first = conn.execute(select(t.c.id).where(t.c.status == "waiting").order_by(t.c.id).limit(1)).scalar_one()
        row = executions.peek_txn(conn, first)
    assert row is not None
    return Sample(first, row, durable.clock.now())


@dataclass(frozen=True)
class Statement:
    sql: str
    params: Any


@contextmanager
def capture(durable: Durable) -> Iterator[list[Statement]]:
    """The statements sent to the database inside the block."""
    seen: list[Statement] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        seen.append(Statement(statement, parameters))

    engine = durable.db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def statements_of(durable: Durable, probe: Probe, at: Sample) -> list[Statement]:
    """What ``probe`` sends, run once in a transaction that is rolled back."""
    with capture(durable) as seen, durable.db.connect() as conn:
        with conn.begin() as trans:
            probe.run(conn, at)
            trans.rollback()
    return [s for s in seen if not s.sql.lstrip().upper().startswith(("BEGIN", "SAVEPOINT", "RELEASE"))]


@dataclass
class Plan:
    """The plans of one statement of a probe."""

    statement: str
    custom: str
    generic: str
    seq_scans: list[str] = field(default_factory=list)

    @property
    def on_index(self) -> bool:
        return not self.seq_scans


_PARAM = re.compile(r"%\((\w+)\)s")
_SEQ = re.compile(r"Seq Scan on (\w+)")


def explain(dsn: str, statement: Statement) -> Plan:
    """Both plans of ``statement`` (see the module docstring), on a connection of its own whose
    transaction is rolled back."""
    with psycopg.connect(dsn) as conn:
        try:
            custom = "\n".join(r[0] for r in conn.execute(
                "EXPLAIN (ANALYZE, BUFFERS) " + statement.sql, statement.params or None))  # type: ignore[arg-type]
            conn.rollback()
            names: list[str] = []
            prepared = _PARAM.sub(lambda m: f"${_position(names, m.group(1))}", statement.sql.replace("%%", "%"))
            values = [sql.Literal(statement.params[name]).as_string(conn) for name in names]
            conn.execute("SET plan_cache_mode = force_generic_plan")
            conn.execute(sql.SQL(f"PREPARE scale_probe AS {prepared}"))  # type: ignore[arg-type]
            generic = "\n".join(r[0] for r in conn.execute(  # type: ignore[call-overload]
                "EXPLAIN (ANALYZE, BUFFERS) EXECUTE scale_probe" + (f"({', '.join(values)})" if values else "")))
        finally:
            conn.rollback()
    scans = sorted({m for text in (custom, generic) for m in _SEQ.findall(text) if m in BIG_TABLES})
    return Plan(statement.sql, custom, generic, scans)


def _position(names: list[str], name: str) -> int:
    if name not in names:
        names.append(name)
    return names.index(name) + 1


def plans(durable: Durable, dsn: str, at: Sample, probes: Sequence[Probe] = PROBES) -> dict[str, list[Plan]]:
    """Every probe's statements, explained (a probe that sends nothing has no plans)."""
    return {probe.name: [explain(dsn, s) for s in statements_of(durable, probe, at)] for probe in probes}


@dataclass(frozen=True)
class Timing:
    name: str
    runs_ms: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.runs_ms)

    @property
    def p95(self) -> float:
        ordered = sorted(self.runs_ms)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]

    @property
    def best(self) -> float:
        return min(self.runs_ms)


def _timed(runs: int, call: Callable[[], object]) -> tuple[float, ...]:
    call()  # warm: connection, statement cache
    out = []
    for _ in range(runs):
        began = time.perf_counter()
        call()
        out.append((time.perf_counter() - began) * 1000)
    return tuple(out)


def time_sweeps(durable: Durable, runs: int, at: Sample) -> list[Timing]:
    """Each of the tick's sweep queries in its own transaction (as the tick runs them), ``runs``
    times, then one whole :func:`tick` call ``runs`` times."""
    timings = []
    for probe in PROBES:
        if probe.sweep:
            def once(probe: Probe = probe) -> object:
                with durable.db.begin() as conn:
                    return probe.run(conn, Sample(at.execution_id, at.row, durable.clock.now()))
            timings.append(Timing(probe.name, _timed(runs, once)))
    timings.append(time_tick(durable, runs))
    return timings


def time_tick(durable: Durable, runs: int) -> Timing:
    """One whole tick sweep (every sweep, each in its transaction, and what they publish)."""
    return Timing("tick (whole sweep)", _timed(runs, lambda: tick(durable.services)))
