"""Transactions on ``step_executions``: one row per finished step attempt."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, RowMapping, bindparam, insert, or_, select, update

from durable_celery.state.tables import step_executions as s
from durable_celery.state.tables import workflow_executions as e


def record_attempt_txn(conn: Connection, row: dict[str, Any]) -> None:
    """Insert one attempt's outcome; (execution_id, seq) is unique, so an attempt is recorded
    at most once even if two workers raced to the same checkpoint."""
    conn.execute(insert(s).values(**row))


def advance_with_attempt(conn: Connection, execution_id: str, seq: int, token: str, values: dict[str, Any],
                         attempt: dict[str, Any]) -> bool:
    """Postgres, in one statement: move a leased execution from ``seq`` to ``seq + 1`` with
    ``values`` and record the attempt, or neither if the lease was lost. A data-modifying CTE is
    atomic on its own, so the checkpoint costs one round trip instead of four."""
    key = (tuple(values), tuple(attempt))
    stmt = _ADVANCE.get(key)
    if stmt is None:  # built once per shape: building costs more than running it
        moved = (update(e).where(e.c.id == bindparam("_id"), e.c.seq == bindparam("_seq"),
                                 e.c.lease_owner == bindparam("_token"))
                 .values(seq=bindparam("_next"), **{k: bindparam(f"v_{k}", type_=e.c[k].type) for k in values})
                 .returning(e.c.id).cte("moved"))
        row = select(*[bindparam(f"a_{c}", type_=s.c[c].type).label(c) for c in attempt]).select_from(moved)
        stmt = _ADVANCE[key] = insert(s).from_select(list(attempt), row).returning(s.c.id)
    params = {"_id": execution_id, "_seq": seq, "_token": token, "_next": seq + 1,
              **{f"v_{k}": v for k, v in values.items()}, **{f"a_{c}": v for c, v in attempt.items()}}
    return conn.execute(stmt, params).first() is not None


_ADVANCE: dict[tuple[tuple[str, ...], tuple[str, ...]], Any] = {}


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
