"""Start deadlines in the pure core: where a start deadline comes from and what it is counted
from (``new_execution_row``), and what ``locate`` decides for an execution whose first step has
not begun by it. No database, no broker."""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from durable_celery import Workflow
from durable_celery.compiler import compile_workflow
from durable_celery.compiler.ir import StateMachine
from durable_celery.engine import decide
from durable_celery.engine.statuses import ExecutionStatus
from durable_celery.engine.values import Checkpoint, Outcome, Snapshot, StepOutcome, StepResult
from durable_celery.errors import DefinitionError, InvalidInput
from durable_celery.runtime.starts import hand_over_start, new_execution_row, new_execution_rows
from durable_celery.settings import Settings
from tests.unit.snapshots import snap as snapshot

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=timezone.utc)
POLICY = decide.Policy(worker="w1")
SETTINGS = Settings(database_url="sqlite://", embedded=True)


def machine(start_deadline: Any = None, timeout: Any = None) -> StateMachine:
    wf = Workflow("reminder", start_deadline=start_deadline, timeout=timeout)

    @wf.step
    def remind(ctx: dict[str, Any]) -> dict[str, Any]:
        return ctx

    @wf.step
    def log(ctx: dict[str, Any]) -> dict[str, Any]:
        return ctx

    return compile_workflow(wf)


def claimed(m: StateMachine, start_deadline_at: datetime | None, **changes: Any) -> Snapshot:
    """The first step's execution as a claim returns it (running, started now)."""
    return snapshot(m, m.entry, **{"seq": 0, "entered_seq": 0, "context": {}, "started_at": NOW,
                                   "step_started_at": NOW, "start_deadline_at": start_deadline_at, **changes})


# -- where a start deadline comes from ------------------------------------------------------------


@pytest.mark.parametrize("workflow_option, start_option, scheduled_in, expected", [
    # none anywhere: no start deadline, it waits for a worker however long it takes
    (None, None, None, None),
    # the workflow's own, counted from the start
    (60, None, None, timedelta(seconds=60)),
    # the start option wins over the workflow's
    (60, timedelta(hours=2), None, timedelta(hours=2)),
    (None, 1.5, None, timedelta(seconds=1.5)),
    # a scheduled start: counted from when it is due
    (60, None, timedelta(hours=1), timedelta(hours=1, seconds=60)),
    (None, 30, timedelta(minutes=5), timedelta(minutes=5, seconds=30)),
    # scheduled in the past: due now, so counted from now
    (None, 30, -timedelta(hours=1), timedelta(seconds=30)),
])
def test_a_start_deadline_counts_from_when_the_execution_is_due(
        workflow_option: Any, start_option: Any, scheduled_in: timedelta | None, expected: timedelta | None) -> None:
    m = machine(start_deadline=workflow_option)
    scheduled_at = NOW + scheduled_in if scheduled_in is not None else None
    row = new_execution_row(m, SETTINGS, {}, NOW, scheduled_at=scheduled_at, start_deadline=start_option)
    assert row["start_deadline_at"] == (NOW + expected if expected is not None else None)


def test_start_many_gives_every_row_the_same_start_deadline() -> None:
    rows = new_execution_rows(machine(), SETTINGS, [{}, {}, {}], NOW, start_deadline=10)
    assert {row["start_deadline_at"] for row in rows} == {NOW + timedelta(seconds=10)}


@pytest.mark.parametrize("bad", [-1, 0, timedelta(0), timedelta(seconds=-1), math.nan, math.inf, "60", True,
                                 datetime(2030, 1, 1, tzinfo=timezone.utc)])
def test_a_start_deadline_must_be_a_positive_duration(bad: Any) -> None:
    with pytest.raises(InvalidInput, match="start_deadline"):
        new_execution_row(machine(), SETTINGS, {}, NOW, start_deadline=bad)
    with pytest.raises(InvalidInput, match="start_deadline"):
        new_execution_rows(machine(), SETTINGS, [{}], NOW, start_deadline=bad)
    with pytest.raises(DefinitionError, match="start_deadline"):
        Workflow("reminder", start_deadline=bad)


def test_the_workflow_option_is_compiled_but_is_not_part_of_the_version() -> None:
    # Changing it changes no running execution's path: a deploy that sets it is no new version
    assert machine(start_deadline=timedelta(minutes=5)).start_deadline == 300
    assert machine(start_deadline=300).version == machine().version


# -- what locate decides --------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["claimed", "handed"])
def test_a_first_step_reached_after_the_start_deadline_is_cancelled_not_run(how: str) -> None:
    m = machine()
    deadline = NOW - timedelta(seconds=1)
    # Given its first step, reached after the deadline by a claim or from the lease its message carries
    snap = claimed(m, deadline)
    if how == "handed":
        row = new_execution_row(m, SETTINGS, {}, NOW - timedelta(minutes=1), start_deadline=59)
        # (the snapshot its message carries, as take_handoff gives it to the task)
        snap = dataclasses.replace(hand_over_start(row, "h1", 10), step_started_at=NOW)
        assert snap.started_at is None and snap.start_deadline_at == deadline
    # When it is located
    located = decide.locate(m, snap, decide.Turn(NOW))
    # Then it is cancelled, with nothing to compensate and nothing below it to stop
    assert isinstance(located, Checkpoint) and located.outcome is Outcome.CANCELLED
    values = located.values
    assert values["status"] == "cancelled" and values["error"]["type"] == decide.START_DEADLINE_PASSED
    assert deadline.isoformat() in values["error"]["message"]
    assert not located.compensate and not located.stop_descendants and located.attempt is None
    # And it is recorded as never started, out of the tick's sweep, its lease released
    assert values["started_at"] is None and values["start_deadline_at"] is None
    assert values["lease_owner"] is None and values["completed_at"] == NOW


def test_a_start_deadline_that_has_not_passed_lets_the_first_step_run() -> None:
    m = machine()
    located = decide.locate(m, claimed(m, NOW + timedelta(milliseconds=1)), decide.Turn(NOW))
    assert isinstance(located, decide.Run) and located.state.id == "remind"


def test_the_start_deadline_is_decided_before_the_workflow_timeout_or_an_unknown_workflow() -> None:
    m = machine(timeout=1)
    passed = claimed(m, NOW, deadline_at=NOW - timedelta(seconds=5))
    for definition in (m, None):
        located = decide.locate(definition, passed, decide.Turn(NOW))
        assert isinstance(located, Checkpoint) and located.values["error"]["type"] == "StartDeadlinePassed"


def test_the_first_decision_after_the_first_step_began_clears_the_start_deadline() -> None:
    m = machine()
    snap = claimed(m, NOW + timedelta(seconds=1))
    run = decide.locate(m, snap, decide.Turn(NOW))
    assert isinstance(run, decide.Run)
    # When the step ends after the deadline, whether it succeeded or failed
    later = decide.Turn(NOW + timedelta(seconds=5), may_continue=True, queue="durable")
    for result in (StepResult(StepOutcome.SUCCEEDED, value={}), StepResult(StepOutcome.FAILED, error={"type": "X"})):
        cp = decide.after_step(m, snap, run, result, later, POLICY)
        # Then the start deadline is cleared with that checkpoint, never applied
        assert cp.values["start_deadline_at"] is None and cp.status is not ExecutionStatus.CANCELLED
    # And in continuation the next step goes on from a snapshot without one
    cp = decide.after_step(m, snap, run, StepResult(StepOutcome.SUCCEEDED, value={}), later,
                           decide.Policy(worker="w1", dispatch_mode="continuation"))
    assert cp.outcome is Outcome.CONTINUE
    following = decide.locate(m, snap.after(cp), later)
    assert isinstance(following, decide.Run) and following.state.id == "log"


def test_an_execution_without_a_start_deadline_writes_none() -> None:
    m = machine()
    snap = claimed(m, None)
    run = decide.locate(m, snap, decide.Turn(NOW))
    assert isinstance(run, decide.Run)
    cp = decide.after_step(m, snap, run, StepResult(StepOutcome.SUCCEEDED, value={}), decide.Turn(NOW), POLICY)
    assert "start_deadline_at" not in cp.values


def test_a_handoff_message_carries_the_start_deadline() -> None:
    snap = claimed(machine(), NOW + timedelta(seconds=3))
    assert Snapshot.from_wire(snap.to_wire()).start_deadline_at == NOW + timedelta(seconds=3)


def test_a_handoff_message_from_a_worker_that_predates_start_deadlines_has_none() -> None:
    # (a rolling deploy: the message was sent by a worker whose snapshots lack the field)
    wire = claimed(machine(), None).to_wire()
    del wire["start_deadline_at"]
    assert Snapshot.from_wire(wire).start_deadline_at is None
