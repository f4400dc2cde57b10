"""durable-celery: durable, resumable workflows on Celery, with state in Postgres.

The public API (see API.md): define workflows with :class:`Workflow`, run them with
:class:`Durable` on a Celery app.
"""

from durable_celery.dsl.goto import Goto, goto
from durable_celery.dsl.options import Cron, Retry
from durable_celery.dsl.workflow import Workflow
from durable_celery.durable import Durable
from durable_celery.durations import days, hours, minutes, seconds
from durable_celery.engine.statuses import ExecutionStatus, StepStatus
from durable_celery.errors import (
    AppNotInitialized,
    BranchNoMatch,
    ChildFailed,
    ChildWorkflowError,
    ContextNotSerializable,
    DatabaseUnavailable,
    DefinitionChanged,
    DefinitionError,
    DurableError,
    ExecutionNotFound,
    InvalidInput,
    InvalidState,
    LoopLimitExceeded,
    PayloadTooLarge,
    QueueNotFound,
    ScheduleNotFound,
    SchemaOutOfDate,
    StepAttemptFailed,
    StepTimeout,
    TaskArgumentError,
    TaskFailed,
    WaitMismatch,
    WorkerLost,
    WorkflowNotFound,
    WorkflowTimeout,
)
from durable_celery.models import (
    DeployPlan,
    Execution,
    ExecutionPage,
    LifecycleEvent,
    Metrics,
    MigrationResult,
    MigrationSkip,
    PendingInput,
    PlanGroup,
    PlanVersion,
    QueueStats,
    Schedule,
    StepMetrics,
    StepRecord,
    WorkflowPlan,
    WorkflowSummary,
)

__all__ = [
    # defining workflows
    "Workflow", "Retry", "Cron", "goto", "Goto", "seconds", "minutes", "hours", "days",
    # running them
    "Durable", "Execution", "StepRecord", "PendingInput", "ExecutionStatus", "StepStatus",
    "Schedule", "QueueStats", "ExecutionPage", "WorkflowSummary", "Metrics", "StepMetrics", "LifecycleEvent",
    "DeployPlan", "WorkflowPlan", "PlanGroup", "PlanVersion",
    "MigrationResult", "MigrationSkip",
    # errors
    "DurableError", "DefinitionError", "WorkflowNotFound", "ExecutionNotFound", "InvalidInput", "InvalidState",
    "DefinitionChanged", "StepTimeout", "WorkflowTimeout", "BranchNoMatch", "ContextNotSerializable",
    "SchemaOutOfDate", "ChildFailed", "LoopLimitExceeded", "WaitMismatch", "WorkerLost", "AppNotInitialized",
    "ChildWorkflowError", "TaskFailed", "TaskArgumentError", "ScheduleNotFound", "QueueNotFound",
    "StepAttemptFailed", "PayloadTooLarge",
    "DatabaseUnavailable",
]
