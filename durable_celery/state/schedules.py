"""Transactions on ``scheduled_workflows``: the client's writes, the boot-time sync of the
schedules declared in code, and the tick's sweep. The tick locks due rows ``FOR UPDATE SKIP
LOCKED`` and moves ``next_run_at`` on in the transaction that inserts their runs, whose
idempotency keys name the slot: two beats never start one slot twice."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, RowMapping

from durable_celery.state.tables import scheduled_workflows as t


def run_key(name: str, slot: datetime) -> str:
    """The idempotency key of a schedule's run for one slot (a UTC time)."""
    return f"schedule:{name}@{slot.isoformat()}"


def _insert(conn: Connection) -> Any:
    return postgresql.insert(t) if conn.dialect.name == "postgresql" else sqlite.insert(t)


def insert_schedule_txn(conn: Connection, row: dict[str, Any]) -> bool:
    """Insert a new schedule; False (nothing written) if one with its name exists."""
    stmt = _insert(conn).values(**row).on_conflict_do_nothing(index_elements=["name"]).returning(t.c.name)
    return conn.execute(stmt).scalar() is not None


def sync_code_schedule_txn(conn: Connection, row: dict[str, Any]) -> None:
    """Insert or update a schedule declared on a Workflow. The code decides its workflow, cron,
    timezone, input and queue; ``enabled`` and the run times stay as they are, but for
    ``next_run_at``, recomputed (``row["next_run_at"]``) when the cron or timezone changed."""
    stmt = _insert(conn).values(**row)
    new = stmt.excluded
    retimed = and_(t.c.enabled, or_(t.c.next_run_at.is_(None), t.c.cron != new.cron, t.c.timezone != new.timezone))
    stmt = stmt.on_conflict_do_update(index_elements=["name"], set_={
        "workflow": new.workflow, "cron": new.cron, "timezone": new.timezone, "input": new.input,
        "queue": new.queue, "origin": new.origin, "updated_at": new.updated_at,
        "next_run_at": case((retimed, new.next_run_at), else_=t.c.next_run_at),
    })
    conn.execute(stmt)


def get_schedule_txn(conn: Connection, name: str, *, lock: bool = False) -> RowMapping | None:
    query = select(t).where(t.c.name == name)
    if lock:
        query = query.with_for_update()
    return conn.execute(query).mappings().first()


def list_schedules_txn(conn: Connection, *, enabled: bool | None, workflow: str | None, queue: str | None,
                       limit: int, offset: int = 0) -> Sequence[RowMapping]:
    query = select(t).order_by(t.c.name).limit(limit).offset(offset)
    if enabled is not None:
        query = query.where(t.c.enabled.is_(enabled))
    if workflow is not None:
        query = query.where(t.c.workflow == workflow)
    if queue is not None:
        query = query.where(t.c.queue == queue)
    return conn.execute(query).mappings().all()


def update_schedule_txn(conn: Connection, name: str, values: dict[str, Any]) -> RowMapping | None:
    """Set ``values`` on the schedule; its new row, or None if there is none by that name."""
    stmt = update(t).where(t.c.name == name).values(**values).returning(*t.c)
    return conn.execute(stmt).mappings().first()


def delete_schedule_txn(conn: Connection, name: str) -> bool:
    return conn.execute(delete(t).where(t.c.name == name).returning(t.c.name)).first() is not None


def take_due_schedules_txn(conn: Connection, now: datetime, limit: int) -> Sequence[RowMapping]:
    """Enabled schedules due by ``now``, locked (rows another beat holds are skipped)."""
    query = (select(t).where(t.c.enabled, t.c.next_run_at <= now).order_by(t.c.next_run_at).limit(limit)
             .with_for_update(skip_locked=True))
    return conn.execute(query).mappings().all()


def count_schedules_txn(conn: Connection) -> tuple[int, int, datetime | None]:
    """(all schedules, enabled ones, the earliest next_run_at of those)."""
    total, enabled, next_due = conn.execute(select(
        func.count(), func.count().filter(t.c.enabled), func.min(case((t.c.enabled, t.c.next_run_at)))
    ).select_from(t)).one()
    return int(total), int(enabled), next_due
