"""Read-only queries behind ``durable doctor`` and ``show``'s "why it is not moving" line.

Each finds one kind of execution that is not moving, grouped where it helps (by queue), with a
count and a few example ids; none takes a lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, literal_column, or_, select
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.sql.expression import ColumnElement

from durable_celery.engine.statuses import ACTIVE, RUNNABLE, ExecutionStatus
from durable_celery.state.tables import scheduled_workflows as sw
from durable_celery.state.tables import waits as w
from durable_celery.state.tables import workflow_executions as t

_ACTIVE = sorted(s.value for s in ACTIVE)
_RUNNABLE = sorted(s.value for s in RUNNABLE)


def _status(value: ExecutionStatus) -> ColumnElement[str]:
    # a literal: the planner sees a rare status and takes the (status, created_at) index
    return literal_column(f"'{value.value}'")


@dataclass(frozen=True)
class Found:
    """How many rows one query found, and the first few ids."""

    count: int
    examples: list[str]


def _found(conn: Connection, condition: Any, examples: int) -> Found:
    count = int(conn.execute(select(func.count()).select_from(t).where(condition)).scalar_one())
    ids = list(conn.execute(select(t.c.id).where(condition).order_by(t.c.updated_at).limit(examples)).scalars()) \
        if count else []
    return Found(count, ids)


def runnable_by_node_txn(conn: Connection, now: datetime) -> list[RowMapping]:
    """Runnable executions with a message out (or due): ready and not leased (turned away by a
    controlled queue excepted), or leased to a message no worker has taken yet. One row per
    (workflow, current_node, queue) with ``count`` and an ``example`` id, for the caller to map
    each to the Celery queue its message goes to."""
    ready = and_(t.c.ready_at.is_not(None), t.c.lease_expires_at.is_(None), t.c.lease_owner.is_(None),
                 t.c.ready_at <= now, or_(t.c.slot.is_(None), t.c.dispatched_at.is_not(None)))
    handed = and_(t.c.lease_expires_at.is_not(None), t.c.lease_owner.is_not(None), t.c.step_started_at.is_(None))
    rows: list[RowMapping] = []
    for condition in (ready, handed):  # each on its partial index
        rows.extend(conn.execute(
            select(t.c.workflow, t.c.current_node, t.c.queue, func.count().label("count"),
                   func.min(t.c.id).label("example"), func.min(t.c.dispatched_at).label("oldest"))
            .where(condition, t.c.status.in_(_RUNNABLE))
            .group_by(t.c.workflow, t.c.current_node, t.c.queue)).mappings())
    return rows


def expired_leases_txn(conn: Connection, before: datetime, examples: int) -> Found:
    return _found(conn, and_(t.c.lease_expires_at.is_not(None), t.c.lease_owner.is_not(None),
                             t.c.lease_expires_at < before), examples)


def unwakeable_txn(conn: Connection, examples: int) -> Found:
    """Waiting executions with nothing that could wake them: no pending wait (so no event,
    input, timer or child can), no active branch or iteration, no lease."""
    child = t.alias("child")
    pending = select(w.c.id).where(w.c.execution_id == t.c.id, w.c.status == "pending").exists()
    fanned = select(child.c.id).where(child.c.parent_id == t.c.id, child.c.kind != "workflow",
                                      child.c.status.in_(_ACTIVE)).exists()
    return _found(conn, and_(t.c.status == _status(ExecutionStatus.WAITING), t.c.lease_owner.is_(None),
                             ~pending, ~fanned), examples)


def stalled_compensations_txn(conn: Connection, before: datetime, examples: int) -> Found:
    """Compensating executions that nothing runs: no lease, not runnable, no member of the tree
    leased, untouched since ``before``."""
    member = t.alias("member")
    leased = select(member.c.id).where(member.c.root_id == t.c.id, member.c.id != t.c.id,
                                       member.c.lease_owner.is_not(None)).exists()
    return _found(conn, and_(t.c.status == _status(ExecutionStatus.COMPENSATING), t.c.lease_owner.is_(None),
                             t.c.ready_at.is_(None), t.c.updated_at < before, ~leased), examples)


def disabled_schedules_txn(conn: Connection) -> list[RowMapping]:
    return list(conn.execute(select(sw.c.name, sw.c.workflow, sw.c.auto_disabled_at, sw.c.last_error)
                             .where(sw.c.enabled.is_(False)).order_by(sw.c.name)).mappings())


def pending_waits_txn(conn: Connection, execution_id: str, entered_seq: int) -> list[RowMapping]:
    """The pending waits of the current visit of a step, in call order."""
    return list(conn.execute(select(w).where(w.c.execution_id == execution_id, w.c.entered_seq == entered_seq,
                                             w.c.status == "pending").order_by(w.c.idx)).mappings())


def active_fanout_txn(conn: Connection, execution_id: str) -> Sequence[RowMapping]:
    """Active branches and iterations an execution fanned out into."""
    return list(conn.execute(select(t.c.id, t.c.kind, t.c.status).where(
        t.c.parent_id == execution_id, t.c.kind != "workflow", t.c.status.in_(_ACTIVE))
        .order_by(t.c.branch_index)).mappings())
