"""Cron schedules at run time: the tick's sweep that starts due runs, and the sync of the
schedules declared in code (``Workflow(schedule=Cron(...))``) when a worker or beat boots.

The sweep locks due schedules ``FOR UPDATE SKIP LOCKED`` and, in one transaction, inserts one
execution per slot to run (``scheduling/plan.py`` decides which), each with the idempotency key
``schedule:<name>@<slot>``, and moves ``next_run_at`` past now. Two beats, a beat restarted
mid-tick, or a tick run twice: a slot is started once, or (rolled back) not yet.

A start that cannot be made (the workflow is not in this code, its input cannot be used)
consumes the slot, is recorded on the schedule (``consecutive_failures``, ``last_error``) and,
at ``schedule_max_failures`` in a row, disables it (``auto_disabled_at``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from durable_celery import codec
from durable_celery.clock import as_utc
from durable_celery.errors import DurableError, WorkflowNotFound
from durable_celery.registry import Registry
from durable_celery.runtime.services import Services
from durable_celery.runtime.starts import encode_input, new_execution_row
from durable_celery.scheduling.cron import CronSpec, parse
from durable_celery.scheduling.plan import first_run, plan
from durable_celery.state.db import Database
from durable_celery.state.executions import insert_execution_txn
from durable_celery.state.schedules import run_key, sync_code_schedule_txn, take_due_schedules_txn, update_schedule_txn

log = logging.getLogger(__name__)

#: Runs one schedule may start in one tick (catch-up "all" continues on the next tick).
MAX_SLOTS_PER_TICK = 100


def fire_due_schedules(sv: Services, now: datetime) -> int:
    """Start the runs of every due schedule; returns how many were started."""
    with sv.db.begin() as conn:
        started: list[dict[str, Any]] = []
        fired: list[tuple[str, dict[str, Any]]] = []
        for row in take_due_schedules_txn(conn, now, sv.settings.tick_batch):
            runs = _fire(conn, sv, row, now)
            started.extend(runs)
            fired.extend((row["name"], run) for run in runs)
    if fired and sv.live.active():
        sv.live.emit_all([event for name, run in fired for event in (
            sv.live.event("schedule.fired", run, schedule=name),
            sv.live.event("execution.started", run, seq=0, schedule=name))])
    sv.dispatcher.publish(started)
    return len(started)


def _fire(conn: Connection, sv: Services, row: Mapping[Any, Any], now: datetime) -> list[dict[str, Any]]:
    settings = sv.settings
    name = row["name"]
    try:
        spec = CronSpec(row["cron"], row["timezone"])
        made = plan(spec, as_utc(row["next_run_at"]), now, catch_up=settings.schedule_catch_up,  # type: ignore[arg-type]
                    grace=settings.schedule_misfire_grace, limit=MAX_SLOTS_PER_TICK)
    except Exception as exc:  # a timezone this machine does not know (any more): no slot can be computed
        _failed(conn, sv, row, now, None, f"{type(exc).__name__}: {exc}")
        return []
    values: dict[str, Any] = {"next_run_at": made.next_run_at, "updated_at": now}
    if not made.slots:  # missed slots skipped ("none")
        update_schedule_txn(conn, name, values)
        return []
    try:
        machine = sv.registry.get(row["workflow"])
        if machine is None:
            raise WorkflowNotFound(row["workflow"])
        rows = [new_execution_row(machine, settings, codec.decode(row["input"]), now, queue=row["queue"],
                                  scheduled_at=slot, idempotency_key=run_key(name, slot)) for slot in made.slots]
    except DurableError as exc:
        _failed(conn, sv, row, now, made.next_run_at, f"{type(exc).__name__}: {exc}")
        return []
    started = []
    last_id = None
    for new in rows:
        last_id, created = insert_execution_txn(conn, new)
        if created:
            started.append(new)
    values.update(last_run_at=now, last_execution_id=last_id, consecutive_failures=0, last_error=None,
                  last_error_at=None)
    update_schedule_txn(conn, name, values)
    return started


def _failed(conn: Connection, sv: Services, row: Mapping[Any, Any], now: datetime, next_run_at: datetime | None,
            error: str) -> None:
    failures = row["consecutive_failures"] + 1
    values: dict[str, Any] = {"next_run_at": next_run_at, "consecutive_failures": failures, "last_error": error,
                              "last_error_at": now, "updated_at": now}
    if next_run_at is None or failures >= sv.settings.schedule_max_failures:
        values.update(enabled=False, next_run_at=None, auto_disabled_at=now)
        log.error("durable: schedule %r disabled after %d failed start(s) in a row: %s", row["name"], failures, error)
    else:
        log.warning("durable: schedule %r could not start a run (%d in a row): %s", row["name"], failures, error)
    update_schedule_txn(conn, row["name"], values)


def sync_code_schedules(registry: Registry, db: Database, now: datetime) -> int:
    """Store the schedules the loaded workflows declare (``Workflow(schedule=Cron(...))``).

    The code decides each one's workflow, cron, timezone, input and queue; ``enabled`` and its
    run times are kept (``next_run_at`` is recomputed when the cron or timezone changed). A
    schedule removed from the code stays stored: ``delete_schedule`` removes it. Returns how
    many were synced; one that cannot be stored is logged and skipped."""
    rows = code_schedule_rows(registry, now)
    if rows:
        with db.begin() as conn:
            for row in rows:
                sync_code_schedule_txn(conn, row)
    return len(rows)


def code_schedule_rows(registry: Registry, now: datetime) -> list[dict[str, Any]]:
    rows = []
    for workflow in registry.workflows():
        cron = workflow.schedule
        if cron is None:
            continue
        try:
            spec = parse(cron.expression, cron.timezone)
            stored_input = encode_input(cron.input)
        except DurableError:
            log.error("durable: the schedule of workflow %r cannot be stored", workflow.name, exc_info=True)
            continue
        rows.append({"name": cron.name or workflow.name, "workflow": workflow.name, "cron": spec.expression,
                     "timezone": spec.timezone, "input": stored_input, "queue": cron.queue, "enabled": True,
                     "origin": "code", "next_run_at": first_run(spec, now), "consecutive_failures": 0,
                     "created_at": now, "updated_at": now})
    return rows
