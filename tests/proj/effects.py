"""Side effects that steps record outside the engine's transactions, so tests can count how
often each step body really ran."""

from __future__ import annotations

import os

import psycopg

from durable_celery import context


def _conninfo() -> str:
    return os.environ["DT_DB"].replace("postgresql+psycopg://", "postgresql://")


def record(note: str = "") -> None:
    """Record that the current step ran once (committed at once, independent of the engine)."""
    with psycopg.connect(_conninfo(), autocommit=True) as conn:
        conn.execute(
            f'INSERT INTO "{os.environ["DT_PREFIX"]}".test_effects (execution_id, step, attempt, pid, note) '
            "VALUES (%s, %s, %s, %s, %s)",
            (context.workflow_id(), context.current_step(), context.attempt(), os.getpid(), note),
        )
