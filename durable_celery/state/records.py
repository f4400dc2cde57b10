"""Rows to the records the client API returns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from durable_celery import codec
from durable_celery.clock import as_utc
from durable_celery.engine.statuses import ExecutionStatus, StepStatus
from durable_celery.models import Execution, PendingInput, StepRecord


def _dt(value: Any) -> Any:
    return as_utc(value) if value is not None else None


def to_step(row: Mapping[Any, Any], include_logs: bool) -> StepRecord:
    return StepRecord(
        step_name=row["step_name"], attempt=row["attempt"], status=row["status"],
        started_at=_dt(row["started_at"]), completed_at=_dt(row["completed_at"]), duration_ms=row["duration_ms"],
        input=codec.decode(row["input"]), output=codec.decode(row["output"]), error=row["error"],
        logs=row["logs"] if include_logs else None, is_compensation=bool(row["is_compensation"]),
        compensation_for=row["compensation_for"],
    )


def _in_flight(row: Mapping[Any, Any]) -> StepRecord | None:
    """The attempt in flight (running, or suspended in a wait) has no row until it
    checkpoints; it is shown from the execution. A lease handed over with a message is not an
    attempt yet: only once its step started (claimed, or confirmed after its first second)."""
    started = row["lease_owner"] is not None and row["step_started_at"] is not None
    if not row["current_node"] or not (started or row["status"] == ExecutionStatus.WAITING):
        return None
    running = row["status"] != ExecutionStatus.WAITING
    return StepRecord(
        step_name=row["current_node"], attempt=row["attempt"],
        status=(StepStatus.RUNNING if running else StepStatus.WAITING).value,
        started_at=_dt(row["step_started_at"]), completed_at=None, duration_ms=None,
        input=codec.decode(row["context"]), output=None, error=None, logs=None,
    )


def to_execution(row: Mapping[Any, Any], steps: Sequence[Mapping[Any, Any]] | None, include_logs: bool,
                 children: Sequence[Mapping[Any, Any]] = (), child_workflows: Sequence[str] = (),
                 labels: Mapping[tuple[str, str], Any] | None = None) -> Execution:
    """The stored execution; ``labels``: {(workflow, version hash): version label}."""
    records = [to_step(s, include_logs) for s in steps or ()]
    if steps is not None:
        for source in (*children, row):
            current = _in_flight(source)
            if current is not None:
                records.append(current)
    return Execution(
        id=row["id"], workflow=row["workflow"], status=ExecutionStatus(row["status"]),
        input=codec.decode(row["input"]), context=codec.decode(row["context"]), current_step=row["current_node"],
        error=row["error"], queue=row["queue"], priority=row["priority"], parent_id=row["parent_id"],
        started_at=_dt(row["started_at"]), completed_at=_dt(row["completed_at"]), created_at=_dt(row["created_at"]),
        scheduled_at=_dt(row["scheduled_at"]), attempt=row["attempt"],
        compensation_results=list(row["compensation_results"] or []), steps=records,
        children=list(child_workflows), version=row["version"],
        version_label=(labels or {}).get((row["workflow"], row["version"])),
    )


_INPUT_STATUS = {"resolved": "completed"}


def to_pending_input(row: Mapping[Any, Any]) -> PendingInput:
    return PendingInput(
        workflow_id=row["workflow_id"], input_name=row["names"][0], step_name=row["step_name"],
        type=row["input_type"], prompt=row["prompt"], metadata=codec.decode(row["input_metadata"]),
        fields=row["fields"], choices=row["choices"], status=_INPUT_STATUS.get(row["status"], row["status"]),
        timeout_at=_dt(row["timeout_at"]), response=codec.decode(row["result"]) if row["status"] == "resolved" else None,
        created_at=_dt(row["created_at"]), workflow=row.get("workflow"),
    )
