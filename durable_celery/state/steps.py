"""Transactions on ``step_executions``: one row per finished step attempt."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, RowMapping, insert, select

from durable_celery.state.tables import step_executions as s


def record_attempt_txn(conn: Connection, row: dict[str, Any]) -> None:
    """Insert one attempt's outcome; (execution_id, seq) is unique, so an attempt is recorded
    at most once even if two workers raced to the same checkpoint."""
    conn.execute(insert(s).values(**row))


def list_attempts_txn(conn: Connection, execution_id: str) -> list[RowMapping]:
    return list(conn.execute(select(s).where(s.c.execution_id == execution_id).order_by(s.c.seq, s.c.id)).mappings())
