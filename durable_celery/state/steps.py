"""Reads of ``step_executions``: one row per finished step attempt (written with their checkpoint,
by :mod:`durable_celery.state.checkpoint`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.engine import Connection, RowMapping

from durable_celery.engine.decide import OUTCOME_UNKNOWN
from durable_celery.engine.statuses import MIGRATED_STEP, StepStatus
from durable_celery.state.tables import step_executions as s
from durable_celery.state.tables import workflow_executions as e


def compensable_attempts_txn(conn: Connection, execution_id: str) -> list[RowMapping]:
    """The step attempts of an execution's tree that may need compensating, newest first: those
    that completed, and those whose worker died while the execution was stopping (outcome unknown)."""
    tree = select(e.c.id).where(or_(e.c.id == execution_id, e.c.root_id == execution_id))
    unknown = and_(s.c.status == StepStatus.FAILED.value, s.c.error["type"].as_string() == OUTCOME_UNKNOWN)
    stmt = (select(s.c.step_name, s.c.input, s.c.output)
            .where(s.c.execution_id.in_(tree), s.c.is_compensation.is_(False), s.c.step_name != MIGRATED_STEP,
                   or_(s.c.status == StepStatus.COMPLETED.value, unknown))
            .order_by(s.c.completed_at.desc(), s.c.id.desc()))
    return list(conn.execute(stmt).mappings())


def list_attempts_txn(conn: Connection, execution_id: str) -> list[RowMapping]:
    """Every finished attempt of an execution and of the branches and iterations it fanned out
    into, in the order they finished."""
    tree = select(e.c.id).where(or_(e.c.id == execution_id, e.c.root_id == execution_id))
    stmt = select(s).where(s.c.execution_id.in_(tree)).order_by(s.c.completed_at, s.c.id)
    return list(conn.execute(stmt).mappings())


def in_flight_children_txn(conn: Connection, root_id: str) -> list[RowMapping]:
    """Branches and iterations of an execution with a step running or waiting right now."""
    stmt = select(e).where(e.c.root_id == root_id, e.c.id != root_id,
                           or_(e.c.lease_owner.is_not(None), e.c.status == "waiting"))
    return list(conn.execute(stmt.order_by(e.c.created_at, e.c.branch_index)).mappings())


def attempt_recorded_txn(conn: Connection, execution_id: str, seq: int, completed_at: datetime) -> bool:
    """Is the attempt that ended at ``completed_at`` recorded at ``seq``? The checkpoint that
    carries it committed (attempt rows are written only with their checkpoint), even if its
    writer never heard back (the connection broke on the way)."""
    stmt = select(s.c.id).where(s.c.execution_id == execution_id, s.c.seq == seq, s.c.completed_at == completed_at)
    return conn.execute(stmt).first() is not None
