"""What the client API returns: frozen records named as in the reference's schemas."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from durable_celery.engine.statuses import MIGRATED_STEP, ExecutionStatus


@dataclass(frozen=True)
class StepRecord:
    """One step attempt, oldest first in ``Execution.steps``."""

    step_name: str
    attempt: int
    status: str
    started_at: datetime | None
    completed_at: datetime | None
    duration_ms: int | None
    input: Any
    output: Any
    error: dict[str, Any] | None
    logs: list[dict[str, Any]] | None
    is_compensation: bool = False
    compensation_for: str | None = None

    @property
    def migration(self) -> dict[str, Any] | None:
        """For the history row a migration left (``step_name`` ``"$migrated"``, see
        ``Durable.migrate_executions``): ``from``/``from_version``, ``to``/``to_version``,
        ``from_status``, ``restarted``, ``reopened``; its time is ``completed_at``. None for an attempt."""
        return dict(self.output) if self.step_name == MIGRATED_STEP and isinstance(self.output, dict) else None


@dataclass(frozen=True)
class Execution:
    """A workflow execution as stored."""

    id: str
    workflow: str
    status: ExecutionStatus
    input: Any
    context: Any
    current_step: str | None
    error: dict[str, Any] | None
    queue: str
    priority: int
    parent_id: str | None
    started_at: datetime | None
    completed_at: datetime | None
    created_at: datetime
    scheduled_at: datetime | None
    attempt: int
    compensation_results: list[dict[str, Any]] = field(default_factory=list)
    steps: list[StepRecord] = field(default_factory=list)
    #: ids of the child workflows its steps started, oldest first (``get_execution`` only)
    children: list[str] = field(default_factory=list)
    #: the hash of the compiled definition it runs on (``StateMachine.version``)
    version: str | None = None
    #: that definition's ``Workflow(version=...)`` label, when known (registered here, or
    #: recorded by a worker in ``workflow_versions``); None: unlabelled or unknown
    version_label: int | str | None = None


@dataclass(frozen=True)
class PendingInput:
    """A human input a waiting step asked for (``list_pending_inputs``)."""

    workflow_id: str
    input_name: str
    step_name: str
    type: str
    prompt: str | None
    metadata: Any
    fields: list[dict[str, Any]] | None
    choices: list[Any] | None
    status: str
    timeout_at: datetime | None
    response: Any
    created_at: datetime
    #: the name of the workflow that asks (of its branch or iteration, for a step inside one)
    workflow: str | None = None


@dataclass(frozen=True)
class Schedule:
    """A cron schedule (``durable.schedule``, or ``Workflow(schedule=Cron(...))``)."""

    name: str
    #: the workflow's name
    workflow: str
    cron: str
    timezone: str
    input: Any
    #: None: the workflow's own queue, else the engine's
    queue: str | None
    enabled: bool
    last_run_at: datetime | None
    #: when beat starts it next (None while disabled)
    next_run_at: datetime | None
    #: starts that failed in a row; at the engine's ``schedule_max_failures`` it is disabled
    consecutive_failures: int = 0
    last_error: str | None = None
    last_error_at: datetime | None = None
    #: set when failures disabled it (cleared by ``enable_schedule``)
    auto_disabled_at: datetime | None = None
    last_execution_id: str | None = None
    #: "code" (declared on a Workflow, synced when workers and beat boot) or "client"
    origin: str = "client"


@dataclass(frozen=True)
class QueueStats:
    """A queue now (``queue_stats``, ``list_queues``); counts are steps, not workflows.

    ``running``: steps holding a slot of the queue; ``runnable``: steps ready to run on it and not
    started (including the waiting); ``waiting``: of those, the ones a limit, a rate or a pause
    turned away, started as room frees. ``concurrency``: the queue's limit (None: none);
    ``per_key``: the context field limited per value, with ``key_concurrency`` and ``key_rate``;
    ``rate``: like ``"100/m"``, with ``rate_used`` starts in the current window. ``controlled``:
    listed in ``queues=`` (only those can be paused, and only their counts are exact per step).
    """

    name: str
    running: int
    runnable: int
    waiting: int
    concurrency: int | None
    paused: bool
    rate: str | None = None
    rate_used: int | None = None
    per_key: str | None = None
    key_concurrency: int | None = None
    key_rate: str | None = None
    controlled: bool = True


@dataclass(frozen=True)
class ExecutionPage:
    """One page of ``page_executions``: the executions, newest first, and the cursor of the next
    page (None on the last page). Pass ``next_cursor`` back as ``cursor=`` to read on."""

    items: list[Execution]
    next_cursor: str | None


@dataclass(frozen=True)
class WorkflowSummary:
    """One workflow in ``list_workflows``: its top-level executions, counted by status.

    ``registered``: defined on this instance (False: a name seen only in the table, e.g. a
    workflow since removed from the code). ``last_run_at``/``last_status``: the ``created_at``
    and status of its newest execution (None: it never ran).
    """

    name: str
    registered: bool
    total_runs: int
    pending: int
    running: int
    waiting: int
    completed: int
    failed: int
    last_run_at: datetime | None
    last_status: ExecutionStatus | None


@dataclass(frozen=True)
class StepMetrics:
    """One step name in ``Metrics.steps``: its attempts (retries counted one each), the failed
    ones, and the durations (``duration_ms``) of the attempts that ended, in milliseconds."""

    step_name: str
    attempts: int
    failures: int
    avg_duration_ms: float | None
    p50_duration_ms: float | None
    p95_duration_ms: float | None


@dataclass(frozen=True)
class Metrics:
    """``get_metrics``: figures over top-level executions created at or after ``since`` (of one
    workflow, or all), and over the step attempts started at or after ``since``.

    ``counts``: every status, zeros included; ``finished``: executions in a final status;
    ``success_rate``: completed / finished (None when nothing finished). Durations are
    ``completed_at - started_at`` of the finished executions that started, in milliseconds
    (None when there are none); percentiles interpolate between ranks (``percentile_cont``).
    """

    workflow: str | None
    since: datetime | None
    counts: dict[str, int]
    total: int
    finished: int
    success_rate: float | None
    avg_duration_ms: float | None
    p50_duration_ms: float | None
    p95_duration_ms: float | None
    steps: list[StepMetrics] = field(default_factory=list)


@dataclass(frozen=True)
class LifecycleEvent:
    """One lifecycle event, as ``Durable.subscribe`` yields it (docs/operations.md#live-events).

    ``id`` grows with every event: the events of one execution come in the order they
    happened. ``kind`` is one of :data:`durable_celery.runtime.live.KINDS`; ``data`` holds what
    the kind adds (an error, a retry time, a wait's names, the execution's status...).
    ``execution_id`` is the top-level execution for the events of its branches and iterations
    too (``branch_id`` in ``data`` names the branch or iteration)."""

    id: int
    at: datetime
    kind: str
    execution_id: str | None
    workflow: str | None
    step: str | None = None
    attempt: int | None = None
    seq: int | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (``at`` as ISO 8601): the shape the CLI's ``events`` prints."""
        return {"id": self.id, "at": self.at.isoformat(), "kind": self.kind, "execution_id": self.execution_id,
                "workflow": self.workflow, "step": self.step, "attempt": self.attempt, "seq": self.seq,
                "data": self.data}


@dataclass(frozen=True)
class MigrationSkip:
    """An execution ``migrate_executions`` did not move (or would not), and why: ``running`` (a
    step in flight), ``already on the current version``, ``locked or changed meanwhile`` (try
    again), ``not on a mapped node``, ``not found``, ...; ``node``: where it stands."""

    execution_id: str
    node: str | None
    status: str | None
    reason: str


@dataclass(frozen=True)
class MigrationResult:
    """What ``migrate_executions`` moved, or with ``dry_run`` would move.

    ``moved``: execution ids by the old node they stood on (each mapping key that moved any);
    ``skipped``: the executions considered and left alone; ``unmatched``: mapping keys no
    execution considered stood on (not an error). ``version``: the definition they moved to.
    """

    workflow: str
    version: str
    dry_run: bool
    mapping: dict[str, str]
    moved: dict[str, list[str]] = field(default_factory=dict)
    skipped: list[MigrationSkip] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        """How many executions moved (would move)."""
        return sum(len(ids) for ids in self.moved.values())


#: How the state an execution stands on fares in a deploy (``durable plan``):
#: "kept": it runs on an old version that is still registered (it finishes on it);
#: "unchanged": the deployed definition has the state with the same shape (it runs on there);
#: "changed": the state is there with other options or another successor;
#: "gone": the state (or the whole workflow) is not in the deployed definition.
#: "changed" and "gone" strand the execution: it would fail with ``DefinitionChanged``.
PLAN_VERDICTS = ("kept", "unchanged", "changed", "gone")


@dataclass(frozen=True)
class PlanGroup:
    """The in-flight executions (and branches, iterations) of one workflow that stand on one
    state of one version. ``changes`` says how the state changed or why it is gone, e.g.
    ``"options: retry"``, ``"successor: charge -> reserve"``, ``"renamed to await_go"``,
    ``"removed"`` (empty when unchanged or kept, or when no description of the old version was
    recorded to tell)."""

    workflow: str
    version: str
    version_label: int | str | None
    state: str | None
    verdict: str
    count: int
    examples: list[str]
    changes: list[str] = field(default_factory=list)

    @property
    def stranded(self) -> bool:
        return self.verdict in ("changed", "gone")


@dataclass(frozen=True)
class PlanVersion:
    """One registered definition of a workflow: ``current`` is the one new executions start
    on; ``executions``: the in-flight ones pinned to it. A non-current version with none is
    needed no more (its definition may be removed from the code)."""

    version: str
    label: int | str | None
    current: bool
    executions: int

    @property
    def needed(self) -> bool:
        return self.current or self.executions > 0


@dataclass(frozen=True)
class WorkflowPlan:
    """One workflow in a deploy plan: its in-flight executions counted by verdict, their
    groups, and its registered versions."""

    workflow: str
    #: registered in the code being deployed (False: only in-flight executions know the name)
    registered: bool
    current_version: str | None
    current_label: int | str | None
    counts: dict[str, int]
    groups: list[PlanGroup] = field(default_factory=list)
    versions: list[PlanVersion] = field(default_factory=list)

    @property
    def stranded(self) -> int:
        return self.counts.get("changed", 0) + self.counts.get("gone", 0)

    @property
    def unneeded_versions(self) -> list[PlanVersion]:
        """Old versions still registered that no in-flight execution runs on any more."""
        return [v for v in self.versions if not v.needed]


@dataclass(frozen=True)
class DeployPlan:
    """``durable.plan()``: what deploying the registered definitions does to the in-flight
    executions, per workflow (docs/deploys.md). ``ok`` is False when it would strand some."""

    workflows: list[WorkflowPlan]

    @property
    def stranded(self) -> int:
        return sum(w.stranded for w in self.workflows)

    @property
    def ok(self) -> bool:
        return self.stranded == 0

    def workflow(self, name: str) -> WorkflowPlan | None:
        return next((w for w in self.workflows if w.workflow == name), None)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: what ``durable plan --json`` prints."""
        return {
            "ok": self.ok, "stranded": self.stranded,
            "workflows": [{
                "workflow": w.workflow, "registered": w.registered, "current_version": w.current_version,
                "current_label": w.current_label, "counts": w.counts, "stranded": w.stranded,
                "groups": [{"version": g.version, "version_label": g.version_label, "state": g.state,
                            "verdict": g.verdict, "count": g.count, "examples": g.examples, "changes": g.changes}
                           for g in w.groups],
                "versions": [{"version": v.version, "label": v.label, "current": v.current,
                              "executions": v.executions, "needed": v.needed} for v in w.versions],
            } for w in self.workflows],
        }
