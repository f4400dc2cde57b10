"""Execution and step statuses: closed sets, shared by Python and the SQL CHECK constraints."""

from __future__ import annotations

from durable_celery.compat import StrEnum
from durable_celery.errors import IllegalMove


class ExecutionStatus(StrEnum):
    """Status of a workflow execution; compares equal to its plain string."""

    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    COMPENSATING = "compensating"
    COMPENSATED = "compensated"
    COMPENSATION_FAILED = "compensation_failed"


class StepStatus(StrEnum):
    """Status of one step attempt."""

    RUNNING = "running"
    #: shown for the attempt suspended in a wait (never stored)
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"


#: The ``step_name`` of a history row that records a migration (``migrate_executions``): it is
#: no step (``$`` starts no step id), never compensated nor counted in metrics.
MIGRATED_STEP = "$migrated"

#: Executions that still have work to do (and can be cancelled).
ACTIVE = frozenset({ExecutionStatus.PENDING, ExecutionStatus.RUNNING, ExecutionStatus.WAITING,
                    ExecutionStatus.COMPENSATING})
#: Executions that a worker may claim and advance.
RUNNABLE = frozenset({ExecutionStatus.PENDING, ExecutionStatus.RUNNING, ExecutionStatus.COMPENSATING})
#: Final statuses: nothing changes an execution once it is here.
TERMINAL = frozenset({ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED,
                      ExecutionStatus.COMPENSATED, ExecutionStatus.COMPENSATION_FAILED})
#: Terminal statuses from which `retry()` may start a new execution.
RETRYABLE = frozenset({ExecutionStatus.FAILED, ExecutionStatus.CANCELLED, ExecutionStatus.COMPENSATED,
                       ExecutionStatus.COMPENSATION_FAILED})

#: The allowed moves; every status change in the store is one of these.
ALLOWED_MOVES: dict[ExecutionStatus, frozenset[ExecutionStatus]] = {
    ExecutionStatus.PENDING: frozenset({ExecutionStatus.RUNNING, ExecutionStatus.CANCELLED, ExecutionStatus.FAILED,
                                        ExecutionStatus.COMPLETED, ExecutionStatus.COMPENSATING}),
    ExecutionStatus.RUNNING: frozenset({ExecutionStatus.RUNNING, ExecutionStatus.WAITING,
                                        ExecutionStatus.COMPLETED, ExecutionStatus.FAILED,
                                        ExecutionStatus.CANCELLED, ExecutionStatus.COMPENSATING}),
    ExecutionStatus.WAITING: frozenset({ExecutionStatus.RUNNING, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED,
                                        ExecutionStatus.COMPENSATING}),
    # with nothing to compensate it ends as it would have without compensations
    ExecutionStatus.COMPENSATING: frozenset({ExecutionStatus.COMPENSATING, ExecutionStatus.COMPENSATED,
                                             ExecutionStatus.COMPENSATION_FAILED, ExecutionStatus.CANCELLED,
                                             ExecutionStatus.FAILED}),
}


#: The same table keyed by plain strings (a StrEnum member hashes as its string): checked at
#: every decision without building enum members.
_MOVES: dict[str, frozenset[str]] = {src.value: frozenset(d.value for d in dsts) for src, dsts in ALLOWED_MOVES.items()}


#: The one move out of a final status: ``migrate_executions`` re-opens an execution that failed
#: with ``DefinitionChanged`` on the new definition. Nothing else may use it.
REOPEN_MOVES: dict[ExecutionStatus, frozenset[ExecutionStatus]] = {
    ExecutionStatus.FAILED: frozenset({ExecutionStatus.RUNNING}),
}


def check_reopen(src: ExecutionStatus | str, dst: ExecutionStatus | str) -> None:
    """Raise ``IllegalMove`` unless ``src -> dst`` re-opens a final execution (``REOPEN_MOVES``)."""
    if dst not in {d.value for d in REOPEN_MOVES.get(ExecutionStatus(src), frozenset())}:
        raise IllegalMove(str(ExecutionStatus(src).value), str(ExecutionStatus(dst).value))


def can_move(src: ExecutionStatus | str, dst: ExecutionStatus | str) -> bool:
    return dst in _MOVES.get(src, frozenset())


def check_move(src: ExecutionStatus | str, dst: ExecutionStatus | str) -> None:
    """Raise ``IllegalMove`` unless ``src -> dst`` is an allowed move."""
    if not can_move(src, dst):
        raise IllegalMove(str(ExecutionStatus(src).value), str(ExecutionStatus(dst).value))


def sources_of(dst: ExecutionStatus) -> frozenset[ExecutionStatus]:
    """Every status from which an execution may move to ``dst``."""
    return frozenset(src for src, targets in ALLOWED_MOVES.items() if dst in targets)
