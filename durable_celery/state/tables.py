"""Table definitions. Tables carry no schema here: the Postgres schema prefix (default
``durable``) is applied with ``schema_translate_map``, so one definition serves every prefix and
SQLite (which has no schemas)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from durable_celery.engine.statuses import ExecutionStatus, StepStatus

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Json = JSON().with_variant(JSONB(), "postgresql")
BigId = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements only INTEGER keys


def _in(column: str, values: list[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


workflow_executions = Table(
    "workflow_executions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("workflow", String(255), nullable=False),
    Column("version", String(32), nullable=False),
    Column("status", String(32), nullable=False),
    Column("queue", String(255), nullable=False),
    Column("priority", Integer, nullable=False, server_default="0"),
    Column("input", Json, nullable=True),
    Column("context", Json, nullable=True),
    # Where the execution stands: the state to run next, the shape it had when reached, and the
    # attempt number of that state's next run.
    Column("current_node", String(255), nullable=True),
    Column("node_shape", String(32), nullable=True),
    Column("attempt", Integer, nullable=False, server_default="1"),
    # Fencing counter: bumped by every checkpoint; messages carry it, stale ones are dropped.
    Column("seq", Integer, nullable=False, server_default="0"),
    # Lease of the worker running the current state (heart-beaten; expired leases are taken over).
    Column("lease_owner", String(64), nullable=True),
    Column("lease_expires_at", DateTime(timezone=True), nullable=True),
    Column("step_started_at", DateTime(timezone=True), nullable=True),
    # Outbox: runnable from ready_at on; dispatched_at is when a message was (or will be) delivered.
    Column("ready_at", DateTime(timezone=True), nullable=True),
    Column("dispatched_at", DateTime(timezone=True), nullable=True),
    Column("deadline_at", DateTime(timezone=True), nullable=True),
    Column("error", Json, nullable=True),
    Column("parent_id", String(36), nullable=True),
    Column("idempotency_key", String(255), nullable=True),
    Column("scheduled_at", DateTime(timezone=True), nullable=True),
    Column("compensation_results", Json, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("completed_at", DateTime(timezone=True), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    CheckConstraint(_in("status", [s.value for s in ExecutionStatus]), name="status"),
    UniqueConstraint("idempotency_key"),
    # list_executions filters, newest first
    Index(None, "workflow", "status", "created_at"),
    Index(None, "status", "created_at"),
    Index(None, "parent_id"),
    # the tick's three sweeps: runnable-but-undispatched, expired leases, workflow deadlines
    Index("ix_workflow_executions_ready", "ready_at", postgresql_where=text("lease_owner IS NULL AND ready_at IS NOT NULL"),
          sqlite_where=text("lease_owner IS NULL AND ready_at IS NOT NULL")),
    Index("ix_workflow_executions_lease", "lease_expires_at", postgresql_where=text("lease_owner IS NOT NULL"),
          sqlite_where=text("lease_owner IS NOT NULL")),
    Index("ix_workflow_executions_deadline", "deadline_at", postgresql_where=text("deadline_at IS NOT NULL"),
          sqlite_where=text("deadline_at IS NOT NULL")),
)

step_executions = Table(
    "step_executions",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("execution_id", String(36), ForeignKey("workflow_executions.id", ondelete="CASCADE"), nullable=False),
    # The execution's seq when this attempt ran: at most one recorded outcome per checkpoint.
    Column("seq", Integer, nullable=False),
    Column("step_name", String(255), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("status", String(32), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True), nullable=True),
    Column("duration_ms", Integer, nullable=True),
    Column("input", Json, nullable=True),
    Column("output", Json, nullable=True),
    Column("error", Json, nullable=True),
    Column("logs", Json, nullable=True),
    Column("worker", String(255), nullable=True),
    Column("is_compensation", Boolean, nullable=False, server_default="false"),
    Column("compensation_for", String(255), nullable=True),
    CheckConstraint(_in("status", [s.value for s in StepStatus]), name="status"),
    UniqueConstraint("execution_id", "seq"),
)
