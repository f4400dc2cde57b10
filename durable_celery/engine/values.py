"""The values the decision core works on: what it reads (``Snapshot``), what a step attempt
ended with (``StepResult``), and what it decides (``Checkpoint``: the row's new columns, the
attempt record, child rows, messages). All frozen; none of them does I/O."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from durable_celery.clock import as_utc
from durable_celery.compat import StrEnum
from durable_celery.engine.statuses import TERMINAL, ExecutionStatus


class Outcome(StrEnum):
    """How one run of the step task (or one decision outside it) ended."""

    #: continuation: the lease is kept and the next step runs in this task
    CONTINUE = "continue"
    #: the next step was handed over to a new message
    DISPATCHED = "dispatched"
    WAITING = "waiting"
    #: suspended, but what it waits for arrived meanwhile: runnable again at once
    WOKEN = "woken"
    RETRY_SCHEDULED = "retry-scheduled"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    COMPENSATING = "compensating"
    COMPENSATED = "compensated"
    COMPENSATION_FAILED = "compensation_failed"
    #: this worker no longer holds the execution: nothing was written
    LEASE_LOST = "lease-lost"
    #: a duplicate or stale message, dropped at the claim
    DUPLICATE = "duplicate"
    #: a message that came before its time, published again for when it is due
    EARLY = "early"
    #: a controlled queue turned the claim away (a limit, a rate, a pause): the row waits for it
    THROTTLED = "throttled"


class StepOutcome(StrEnum):
    """What one call of a step function ended with."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    #: it reached a wait that is not satisfied yet
    SUSPENDED = "suspended"
    #: the worker lost the execution while the step ran
    LEASE_LOST = "lease_lost"


@dataclass(frozen=True)
class StepResult:
    """The outcome of one attempt of a step or compensation function."""

    outcome: StepOutcome
    value: Any = None
    error: dict[str, Any] | None = None
    #: False for failures not worth retrying (an unusable return value)
    retryable: bool = True
    logs: tuple[dict[str, Any], ...] = ()
    duration_ms: int = 0

    @property
    def ok(self) -> bool:
        return self.outcome is StepOutcome.SUCCEEDED


@dataclass(frozen=True)
class Message:
    """A Celery message to publish after the checkpoint commits: ``(execution_id, seq)`` and the
    workflow and step it will run (for Flower), on ``queue``."""

    execution_id: str
    seq: int
    workflow: str
    step: str | None
    queue: str
    priority: int
    countdown: float | None = None
    #: the lease the checkpoint handed over to this message (docs/reliability.md, "A lease handed over"): its
    #: token and when it expires; the task that receives it in time runs without a claim
    handoff: str | None = None
    handoff_until: datetime | None = None


#: Snapshot fields that mirror columns of ``workflow_executions`` one to one.
COLUMNS = ("id", "workflow", "version", "kind", "status", "queue", "priority", "seq", "entered_seq", "attempt",
            "current_node", "node_shape", "context", "input", "item", "parent_id", "root_id", "parent_seq",
            "branch_key", "deadline_at", "start_deadline_at", "started_at", "step_started_at", "lease_owner", "lost_leases",
            "compensation_plan", "compensation_results", "stopping", "stop_status", "trace_context")


@dataclass(frozen=True)
class Snapshot:
    """The execution row a decision is made from. Contexts stay encoded (as stored)."""

    id: str
    workflow: str
    version: str
    kind: str
    status: ExecutionStatus
    queue: str
    priority: int
    seq: int
    entered_seq: int
    attempt: int
    current_node: str | None
    node_shape: str | None
    context: Any
    input: Any
    item: Any = None
    parent_id: str | None = None
    root_id: str | None = None
    parent_seq: int | None = None
    branch_key: str | None = None
    deadline_at: datetime | None = None
    #: when its first step must have begun by, else it is cancelled; None once it has begun
    start_deadline_at: datetime | None = None
    #: when its first step started (None: not yet; its first checkpoint records it)
    started_at: datetime | None = None
    step_started_at: datetime | None = None
    lease_owner: str | None = None
    lost_leases: int = 0
    compensation_plan: Any = None
    compensation_results: Any = None
    #: a stop (cancel, timeout) requested while a step was in flight
    stopping: Any = None
    stop_status: str | None = None
    #: the W3C traceparent of the execution's span (OpenTelemetry), or None
    trace_context: str | None = None
    loops: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Snapshot:
        """From a ``workflow_executions`` row with (at least) ``COLUMNS`` and ``loops``."""
        values = {name: row[name] for name in COLUMNS}
        values["status"] = ExecutionStatus(values["status"])
        for name in _DATETIMES:  # SQLite returns naive datetimes
            if values[name] is not None:
                values[name] = as_utc(values[name])
        values["loops"] = dict(row["loops"] or {})
        return cls(**values)

    def to_wire(self) -> dict[str, Any]:
        """This snapshot as JSON-safe values, for a handoff message (``from_wire`` reverses it)."""
        values = {name: getattr(self, name) for name in _WIRE}
        values["status"] = self.status.value
        for name in _DATETIMES:
            if values[name] is not None:
                values[name] = values[name].isoformat()
        values["loops"] = dict(self.loops)
        return values

    @classmethod
    def from_wire(cls, values: Mapping[str, Any]) -> Snapshot:
        """The snapshot a handoff message carries; ``ValueError`` or ``KeyError`` if malformed."""
        # a message from a worker older than a field (a rolling deploy) lacks it: None
        fields: dict[str, Any] = {name: values[name] if name not in _ADDED else values.get(name) for name in _WIRE}
        fields["status"] = ExecutionStatus(fields["status"])
        for name in _DATETIMES:
            if fields[name] is not None:
                fields[name] = as_utc(datetime.fromisoformat(fields[name]))
        fields["loops"] = dict(fields["loops"] or {})
        return cls(**fields)

    @property
    def top(self) -> str:
        """The top-level execution this one belongs to (itself for a workflow)."""
        return self.root_id or self.id

    @property
    def is_top_level(self) -> bool:
        return self.kind == "workflow"

    def after(self, checkpoint: Checkpoint) -> Snapshot:
        """This execution as a kept-lease checkpoint left it (continuation goes on from here)."""
        changes = {k: v for k, v in checkpoint.values.items() if k in _FIELDS}
        changes["seq"] = self.seq + 1
        if "status" in changes:
            changes["status"] = ExecutionStatus(changes["status"])
        if "loops" in checkpoint.values:
            changes["loops"] = dict(checkpoint.values["loops"] or {})
        # A copy with the changes, without dataclasses.replace re-running __init__: this runs
        # once per step in continuation mode.
        copy = object.__new__(Snapshot)
        copy.__dict__.update(self.__dict__, **changes)
        return copy


#: every field of a snapshot, in order: what a handoff message carries
_WIRE = tuple(f.name for f in dataclasses.fields(Snapshot))
_FIELDS = frozenset(_WIRE)
_DATETIMES = ("deadline_at", "start_deadline_at", "started_at", "step_started_at")
#: fields added since handoff messages first carried snapshots (None when a message lacks them)
_ADDED = frozenset({"start_deadline_at"})


@dataclass(frozen=True)
class Checkpoint:
    """What a decision writes, in one transaction fenced by the execution's ``seq`` and lease:
    the row's new ``values`` (``seq`` is bumped by the writer), the ``attempt`` record, child
    rows to insert, and ``messages`` to publish after commit.

    A few effects need rows the decision does not have; they are flags the writer carries out in
    the same transaction: ``compensate`` (a failure or stop: if completed steps have
    compensations, the execution starts compensating instead of ending), ``stop_descendants``
    (branches, iterations and children still active are stopped), ``recheck_waits`` (a suspended
    step: wake at once if what it waits for slipped in).
    """

    outcome: Outcome
    values: Mapping[Any, Any]
    attempt: Mapping[Any, Any] | None = None
    children: tuple[Mapping[Any, Any], ...] = ()
    messages: tuple[Message, ...] = ()
    keep_lease: bool = False
    compensate: bool = False
    stop_descendants: bool = False
    recheck_waits: bool = False

    @property
    def status(self) -> ExecutionStatus | None:
        status = self.values.get("status")
        return ExecutionStatus(status) if status is not None else None

    @property
    def finishing(self) -> bool:
        """The execution reaches a final status (or would, but for compensations)."""
        return self.values.get("status") in TERMINAL

    @property
    def simple(self) -> bool:
        """Nothing but the row and the attempt: a single statement can write it."""
        status = self.values.get("status")
        return not (self.children or self.compensate or self.stop_descendants or self.recheck_waits
                    or status in TERMINAL or status == ExecutionStatus.COMPENSATING)

    @property
    def completes_alone(self) -> bool:
        """It completes the execution and touches nothing but its row, the attempt and the
        execution's own open waits (for a top-level workflow: one statement can write it)."""
        return (self.values.get("status") == ExecutionStatus.COMPLETED.value
                and not (self.children or self.compensate or self.stop_descendants or self.recheck_waits))
