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
    Text,
    UniqueConstraint,
    false,
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
#: JSON whose Python None is SQL NULL (not JSON ``null``), for columns tested with IS NULL
NullableJson = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
BigId = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements only INTEGER keys


def _in(column: str, values: list[str]) -> str:
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


READY_WHERE = "ready_at IS NOT NULL AND lease_expires_at IS NULL"
LEASE_WHERE = "lease_expires_at IS NOT NULL"
#: a branch or iteration that completed and whose block is not settled yet (state/checkpoint.py)
UNSETTLED_WHERE = "status = 'completed' AND ready_at IS NOT NULL"
#: the top-level executions (not the branches and iterations they fan out into)
LISTED_WHERE = "kind = 'workflow'"
FINISHED_WHERE = "kind = 'workflow' AND completed_at IS NOT NULL"
START_DEADLINE_WHERE = "start_deadline_at IS NOT NULL"
#: executions (and their branches and iterations) that still stand on a state: ``durable plan``
IN_FLIGHT_WHERE = "status IN ('pending', 'running', 'waiting', 'compensating')"

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
    # The seq at which the execution entered current_node: scopes the node's waits to this visit,
    # so a retry or a resume replays them and a later visit (goto back) starts afresh.
    Column("entered_seq", Integer, nullable=False, server_default="0"),
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
    # The start deadline (docs/defining-workflows.md): by then its first step must have begun,
    # else it is cancelled. Cleared once it starts, so only executions yet to start have one.
    Column("start_deadline_at", DateTime(timezone=True), nullable=True),
    Column("error", Json, nullable=True),
    Column("parent_id", String(36), nullable=True),
    # Executions a workflow fans out into (parallel branches, foreach iterations) are child rows:
    # kind says which; root_id is the top-level execution; parent_seq the parent's entered_seq
    # at the fan-out; branch_key/branch_index/item say which branch or item it runs.
    Column("kind", String(16), nullable=False, server_default="workflow"),
    Column("root_id", String(36), nullable=True),
    Column("parent_seq", Integer, nullable=True),
    Column("branch_key", String(255), nullable=True),
    Column("branch_index", Integer, nullable=True),
    Column("item", Json, nullable=True),
    # iterations of the loops under way, by loop id
    Column("loops", Json, nullable=True),
    # compensations still to run, newest completed step first (saga), while compensating
    Column("compensation_plan", Json, nullable=True),
    Column("idempotency_key", String(255), nullable=True),
    Column("scheduled_at", DateTime(timezone=True), nullable=True),
    Column("compensation_results", Json, nullable=True),
    # times the current attempt's worker was lost (lease expired); past a bound the attempt fails
    Column("lost_leases", Integer, nullable=False, server_default="0"),
    # times the tick re-published the current seq unclaimed (back-off: a backlog is not lost)
    Column("redispatches", Integer, nullable=False, server_default="0"),
    # a stop (cancel, timeout, a failing parent) requested while a step was in flight: applied
    # when that step ends, so its effect is recorded (and compensated) rather than cut off
    Column("stopping", NullableJson, nullable=True),
    # what a compensating execution ends as when it has nothing to compensate (failed, cancelled)
    Column("stop_status", String(32), nullable=True),
    # Controlled queues (docs/queues.md): the queue (and per-key value) whose slot this row's
    # lease holds, or, with no lease, the queue it waits for (turned away by a limit or a pause)
    Column("slot", String(255), nullable=True),
    Column("slot_key", String(255), nullable=True),
    # the W3C traceparent of the execution's span (OpenTelemetry, docs/operations.md): its step
    # attempts' spans are its children, one trace however long it waits; null without tracing
    Column("trace_context", String(128), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("completed_at", DateTime(timezone=True), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    CheckConstraint(_in("status", [s.value for s in ExecutionStatus]), name="status"),
    CheckConstraint(_in("kind", ["workflow", "branch", "iteration", "sequence"]), name="kind"),
    UniqueConstraint("idempotency_key"),
    # list_executions filters, newest first
    Index(None, "workflow", "status", "created_at"),
    Index(None, "status", "created_at"),
    # list_executions' first page (no filter) and count_by_status (an index-only scan): the
    # top-level executions, not the branches and iterations they fanned out into
    Index("ix_workflow_executions_listed", "created_at", "status", postgresql_where=text(LISTED_WHERE),
          sqlite_where=text(LISTED_WHERE)),
    Index(None, "parent_id", "parent_seq", "branch_index"),
    Index(None, "root_id"),
    # the tick's three sweeps: runnable-but-undispatched, expired leases, workflow deadlines.
    # A lease has an owner and an expiry, set and cleared together; these two predicates name the
    # expiry only, so the updates by id that name the owner (claim, checkpoint) cannot use them:
    # estimating them nearly empty, the planner would pick them over the primary key and read
    # every runnable (or leased) row. The sweeps add the matching condition on the expiry.
    Index("ix_workflow_executions_ready", "ready_at", postgresql_where=text(READY_WHERE), sqlite_where=text(READY_WHERE)),
    Index("ix_workflow_executions_lease", "lease_expires_at", postgresql_where=text(LEASE_WHERE),
          sqlite_where=text(LEASE_WHERE)),
    # branches and iterations whose block is not settled yet (state/checkpoint.py): nearly empty
    Index("ix_workflow_executions_unsettled", "ready_at", postgresql_where=text(UNSETTLED_WHERE),
          sqlite_where=text(UNSETTLED_WHERE)),
    # controlled queues: the steps holding (or waiting for) a slot of a queue
    Index("ix_workflow_executions_slot", "slot", "slot_key", postgresql_where=text("slot IS NOT NULL"),
          sqlite_where=text("slot IS NOT NULL")),
    Index("ix_workflow_executions_deadline", "deadline_at", postgresql_where=text("deadline_at IS NOT NULL"),
          sqlite_where=text("deadline_at IS NOT NULL")),
    # the tick's sweep of executions not started by their start deadline: those yet to start
    Index("ix_workflow_executions_start_deadline", "start_deadline_at", postgresql_where=text(START_DEADLINE_WHERE),
          sqlite_where=text(START_DEADLINE_WHERE)),
    # cleanup (state/retention.py): finished top-level executions, oldest first, walked by keyset
    Index("ix_workflow_executions_finished", "completed_at", "id", postgresql_where=text(FINISHED_WHERE),
          sqlite_where=text(FINISHED_WHERE)),
    # the search by id prefix (list_executions(id_prefix=...), the dashboard's id filter):
    # ``id LIKE 'ab12%'`` is a range scan only on an index that compares bytes, whatever the
    # database's collation (text_pattern_ops); top-level executions, as the listing reads
    Index("ix_workflow_executions_id_prefix", "id", postgresql_ops={"id": "text_pattern_ops"},
          postgresql_where=text(LISTED_WHERE), sqlite_where=text(LISTED_WHERE)),
    # durable plan (state/versions.py): the in-flight executions, by workflow and version. Not
    # by where they stand (current_node, node_shape): a checkpoint changes those, and a column
    # in any index makes its update write every index (no HOT update: see migration 0017)
    Index("ix_workflow_executions_in_flight", "workflow", "version",
          postgresql_where=text(IN_FLIGHT_WHERE), sqlite_where=text(IN_FLIGHT_WHERE)),
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
    Column("is_compensation", Boolean, nullable=False, server_default=false()),
    Column("compensation_for", String(255), nullable=True),
    CheckConstraint(_in("status", [StepStatus.RUNNING, StepStatus.COMPLETED, StepStatus.FAILED]), name="status"),
    UniqueConstraint("execution_id", "seq"),
)

#: What a step's journal holds, per visit and in call order: the waits (sleep, event, any, all,
#: input, child: a called workflow, task: an awaited Celery task) and the records of what the visit
#: did once (start: a started workflow, record: a checkpointed value, emit: an emitted event).
WAIT_KINDS = ["sleep", "event", "any", "all", "input", "child", "task", "start", "record", "emit"]

waits = Table(
    "waits",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("execution_id", String(36), ForeignKey("workflow_executions.id", ondelete="CASCADE"), nullable=False),
    # (execution_id, entered_seq, idx): the idx-th wait call of one visit of a step
    Column("entered_seq", Integer, nullable=False),
    Column("idx", Integer, nullable=False),
    Column("step_name", String(255), nullable=False),
    Column("kind", String(16), nullable=False),
    # event names it waits for (the input name for inputs; empty for sleeps)
    Column("names", Json, nullable=False),
    Column("status", String(16), nullable=False),
    # resolved value, or (wait_for_all) the payloads received so far
    Column("result", Json, nullable=True),
    # the newest event this wait has looked at: older pending ones (filtered out, or for a name
    # already received) must not wake the execution again
    Column("seen_event_id", BigId, nullable=True),
    Column("timeout_at", DateTime(timezone=True), nullable=True),
    # what the entry points at: the child execution (call/start), the Celery task id (await_task)
    Column("ref", String(64), nullable=True),
    # await_task: when the task's message was handed to the broker (unset: send it again)
    Column("sent_at", DateTime(timezone=True), nullable=True),
    # human input: the form shown to people
    Column("input_type", String(32), nullable=True),
    Column("prompt", Text, nullable=True),
    Column("input_metadata", Json, nullable=True),
    Column("fields", Json, nullable=True),
    Column("choices", Json, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True), nullable=True),
    CheckConstraint(_in("kind", WAIT_KINDS), name="kind"),
    CheckConstraint(_in("status", ["pending", "resolved", "timed_out", "cancelled"]), name="status"),
    UniqueConstraint("execution_id", "entered_seq", "idx"),
    # the tick: pending waits whose timeout is due
    Index("ix_waits_due", "timeout_at", postgresql_where=text("status = 'pending' AND timeout_at IS NOT NULL"),
          sqlite_where=text("status = 'pending' AND timeout_at IS NOT NULL")),
    # list_pending_inputs
    Index(None, "kind", "status", "timeout_at"),
    # the tick: callers waiting for a child, by child id (swept a slice of ids at a time)
    Index("ix_waits_child", "ref", postgresql_where=text("kind = 'child' AND status = 'pending'"),
          sqlite_where=text("kind = 'child' AND status = 'pending'")),
)

events = Table(
    "events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("execution_id", String(36), ForeignKey("workflow_executions.id", ondelete="CASCADE"), nullable=False),
    # "event" from send_event, "input" from provide_input
    Column("kind", String(16), nullable=False),
    Column("name", String(255), nullable=False),
    Column("payload", Json, nullable=True),
    Column("status", String(16), nullable=False),
    Column("consumed_by", BigId, ForeignKey("waits.id", ondelete="SET NULL"), nullable=True),
    # an emitted event (``emit_event``) copied to this execution: each at most once
    Column("broadcast_id", BigId, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("consumed_at", DateTime(timezone=True), nullable=True),
    CheckConstraint(_in("kind", ["event", "input"]), name="kind"),
    CheckConstraint(_in("status", ["pending", "consumed", "rejected"]), name="status"),
    Index(None, "execution_id", "status", "name"),
    UniqueConstraint("execution_id", "broadcast_id"),
)

broadcasts = Table(
    "broadcasts",
    metadata,
    # ``emit_event``: an event by name for every execution that waits for it, kept for those
    # that were active when it was emitted and reach a wait for it later
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False),
    Column("payload", Json, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index(None, "name", "created_at"),
)

scheduled_workflows = Table(
    "scheduled_workflows",
    metadata,
    # Cron schedules (``durable.schedule``, ``Workflow(schedule=Cron(...))``); the beat tick
    # starts their runs, each keyed by "schedule:<name>@<slot>" in workflow_executions
    Column("name", String(200), primary_key=True),
    Column("workflow", String(255), nullable=False),
    Column("cron", String(255), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("input", Json, nullable=True),
    # None: the workflow's own queue, else the engine's
    Column("queue", String(255), nullable=True),
    Column("enabled", Boolean, nullable=False),
    # "code": declared on a Workflow (synced at boot); "client": made with durable.schedule
    Column("origin", String(16), nullable=False, server_default="client"),
    # when the tick starts it next; None while disabled
    Column("next_run_at", DateTime(timezone=True), nullable=True),
    Column("last_run_at", DateTime(timezone=True), nullable=True),
    Column("last_execution_id", String(36), nullable=True),
    # starts that failed in a row (an unknown workflow, an input it cannot take): at the engine's
    # schedule_max_failures the schedule is disabled and auto_disabled_at set
    Column("consecutive_failures", Integer, nullable=False, server_default="0"),
    Column("last_error", Text, nullable=True),
    Column("last_error_at", DateTime(timezone=True), nullable=True),
    Column("auto_disabled_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    CheckConstraint(_in("origin", ["code", "client"]), name="origin"),
    # the tick: enabled schedules by due time
    Index("ix_scheduled_workflows_due", "next_run_at", postgresql_where=text("enabled"),
          sqlite_where=text("enabled")),
    Index(None, "workflow"),
)

queue_control = Table(
    "queue_control",
    metadata,
    # one row per controlled queue (key ''): pause; its claims lock it, so they count one at a time
    Column("queue", String(255), primary_key=True),
    Column("key", String(255), primary_key=True, server_default=""),
    Column("paused", Boolean, nullable=False, server_default=false()),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

queue_starts = Table(
    "queue_starts",
    metadata,
    # rate-limited queues: when each step started, per queue and key ('' for the queue-wide rate),
    # kept for one rate period (a sliding window)
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("queue", String(255), nullable=False),
    Column("key", String(255), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Index(None, "queue", "key", "started_at"),
)

workflow_versions = Table(
    "workflow_versions",
    metadata,
    # Each compiled definition a worker (or an app) registered, written once per process
    # (INSERT ... ON CONFLICT DO NOTHING): ``durable plan`` reads it to say how a state an
    # in-flight execution stands on changed in a later deploy (docs/deploys.md)
    Column("workflow", String(255), primary_key=True),
    Column("version", String(32), primary_key=True),
    # the ``Workflow(version=...)`` label (an int or a string; null: none)
    Column("label", Json, nullable=True),
    # {state id: {kind, next, shape, spec}} (``StateMachine.states_spec``)
    Column("states", Json, nullable=False),
    Column("entry", String(255), nullable=False),
    Column("first_seen", DateTime(timezone=True), nullable=False),
)

heartbeats = Table(
    "heartbeats",
    metadata,
    # the last time a process that must keep running did its work: "beat" for the tick thread
    # (runtime/beat_service.py); ``durable doctor`` reports one not seen for several intervals
    Column("name", String(64), primary_key=True),
    Column("seen_at", DateTime(timezone=True), nullable=False),
    # who: host and pid
    Column("detail", String(255), nullable=True),
)

live_events = Table(
    "live_events",
    metadata,
    # Lifecycle events for ``subscribe`` (runtime/live.py), written only while someone
    # subscribes, kept ``live_events_retention`` seconds; the id orders them
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("execution_id", String(36), nullable=True),
    Column("root_id", String(36), nullable=True),
    Column("workflow", String(255), nullable=True),
    Column("step", String(255), nullable=True),
    Column("attempt", Integer, nullable=True),
    Column("seq", Integer, nullable=True),
    Column("data", Json, nullable=True),
    Index(None, "at"),
)
