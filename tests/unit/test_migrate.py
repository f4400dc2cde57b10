"""What moving an execution to a new version writes (``engine/migrate.py``), as tables: which
mappings are valid, which executions may move, and the row, history and message of a move."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from durable_celery import Retry, Workflow
from durable_celery.compiler import compile_workflow
from durable_celery.compiler.ir import StateMachine
from durable_celery.engine import migrate
from durable_celery.engine.statuses import MIGRATED_STEP, check_reopen
from durable_celery.errors import IllegalMove, InvalidInput

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)
MAPPING = {"old_wait": "wait_here"}


def v2() -> StateMachine:
    wf = Workflow("orders")

    @wf.step
    def first(ctx: dict[str, Any]) -> dict[str, Any]:
        return ctx

    @wf.step(retry=Retry(max_attempts=5), queue="slow")
    def wait_here(ctx: dict[str, Any]) -> dict[str, Any]:
        return ctx

    with wf.branch(on=lambda ctx: ctx.get("kind")) as b:
        with b.case("a"):
            @wf.step
            def on_a(ctx: dict[str, Any]) -> dict[str, Any]:
                return ctx

    with wf.parallel():
        @wf.step
        def inside(ctx: dict[str, Any]) -> dict[str, Any]:
            return ctx

        @wf.step
        def beside(ctx: dict[str, Any]) -> dict[str, Any]:
            return ctx

    @wf.step
    def last(ctx: dict[str, Any]) -> dict[str, Any]:
        return ctx

    return compile_workflow(wf)


M = v2()


def row(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = dict(
        id="e1", workflow="orders", version="v1hash", kind="workflow", status="waiting", queue="durable",
        priority=3, seq=7, entered_seq=6, attempt=2, current_node="old_wait", node_shape="oldshape",
        context={"n": 1}, lease_owner=None, step_started_at=None, ready_at=None, error=None, parent_id=None)
    values.update(changes)
    return values


def _of_kind(kind: str) -> str:
    return next(s.id for s in M.states.values() if s.kind == kind)


# -- mappings -------------------------------------------------------------------------------------

def test_a_mapping_onto_steps_of_the_deployed_definition_is_valid() -> None:
    assert migrate.check_mapping(M, {"old_wait": "wait_here", "gone": "first"}) == {"old_wait": "wait_here",
                                                                                   "gone": "first"}


@pytest.mark.parametrize("mapping, message", [
    ({"old_wait": "nowhere"}, "has no state 'nowhere'"),
    ({"old_wait": "$end"}, "has no state"),
    ({}, "non-empty dict"),
    ("old_wait=wait_here", "non-empty dict"),
    ({"old_wait": 3}, "non-empty strings"),
    ({"": "first"}, "non-empty strings"),
])
def test_a_mapping_to_no_state_is_refused(mapping: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        migrate.check_mapping(M, mapping)


def test_a_mapping_onto_a_routing_state_is_refused() -> None:
    with pytest.raises(InvalidInput, match="only routes"):
        migrate.check_mapping(M, {"old_wait": _of_kind("branch")})


def test_a_mapping_into_a_parallel_branch_is_refused() -> None:
    with pytest.raises(InvalidInput, match="inside a parallel branch"):
        migrate.check_mapping(M, {"old_wait": "inside"})


def test_a_parallel_state_itself_is_a_valid_target() -> None:
    target = _of_kind("parallel")
    assert migrate.check_mapping(M, {"old_wait": target}) == {"old_wait": target}


# -- who moves --------------------------------------------------------------------------------------

@pytest.mark.parametrize("changes, reason", [
    ({"lease_owner": "w1", "step_started_at": NOW, "status": "running"}, migrate.RUNNING),
    ({"lease_owner": "handed", "status": "running"}, migrate.RUNNING),  # a message carries its lease
    ({"current_node": "elsewhere"}, migrate.NOT_MAPPED),
    ({"version": M.version}, migrate.CURRENT),
    ({"status": "completed"}, migrate.NOT_MOVABLE),
    ({"status": "compensating"}, migrate.NOT_MOVABLE),
    ({"status": "failed", "error": {"type": "Boom", "step": "old_wait"}}, migrate.NOT_MOVABLE),
    ({"status": "failed", "error": {"type": "DefinitionChanged", "step": "other"}}, migrate.NOT_MOVABLE),
    ({"status": "failed", "error": {"type": "DefinitionChanged", "step": "old_wait"}, "parent_id": "p"},
     migrate.CALLED),
    ({"kind": "branch"}, migrate.NOT_TOP_LEVEL),
    ({"workflow": "billing"}, migrate.OTHER_WORKFLOW),
])
def test_who_is_left_alone(changes: dict[str, Any], reason: str) -> None:
    decided = migrate.decide_move(M, row(**changes), MAPPING, NOW)
    assert isinstance(decided, str) and decided.startswith(reason)


# -- what a move writes -----------------------------------------------------------------------------

def test_a_waiting_execution_continues_its_step_visit_on_the_new_state() -> None:
    move = migrate.decide_move(M, row(), MAPPING, NOW)
    assert isinstance(move, migrate.Move)
    state = M.states["wait_here"]
    assert move.values == {"current_node": "wait_here", "node_shape": state.shape, "version": M.version,
                           "lost_leases": 0, "redispatches": 0, "slot": None, "slot_key": None, "updated_at": NOW}
    # it waits on (no message): the wake-up of its pending wait runs the new state, replaying the visit
    assert move.message is None and not move.close_waits and not move.reopen_waits
    assert move.record["step_name"] == MIGRATED_STEP and move.record["seq"] == 7
    assert move.record["output"] == {"from": "old_wait", "from_version": "v1hash", "to": "wait_here",
                                     "to_version": M.version, "from_status": "waiting", "restarted": False,
                                     "reopened": False}
    assert move.record["completed_at"] == NOW and move.record["status"] == "completed"


def test_a_restarted_step_starts_a_new_visit_and_is_dispatched() -> None:
    move = migrate.decide_move(M, row(), MAPPING, NOW, restart_step=True)
    assert isinstance(move, migrate.Move)
    assert move.values["entered_seq"] == 8 and move.values["attempt"] == 1
    assert move.values["status"] == "running" and move.values["ready_at"] == NOW
    assert move.values["dispatched_at"] == NOW
    assert move.close_waits and not move.reopen_waits
    assert move.message is not None
    assert (move.message.execution_id, move.message.seq, move.message.step, move.message.queue,
            move.message.priority) == ("e1", 8, "wait_here", "slow", 3)


def test_a_definition_changed_failure_is_reopened_and_run_again() -> None:
    failed = row(status="failed", error={"type": "DefinitionChanged", "step": "old_wait"})
    move = migrate.decide_move(M, failed, MAPPING, NOW)
    assert isinstance(move, migrate.Move)
    assert move.values["status"] == "running" and move.values["error"] is None
    assert move.values["completed_at"] is None and "entered_seq" not in move.values
    assert move.reopen_waits and not move.close_waits
    assert move.message is not None and move.message.seq == 8
    assert move.record["output"]["reopened"] is True


def test_an_idle_execution_due_later_keeps_its_time_for_the_tick() -> None:
    later = NOW + timedelta(minutes=5)
    move = migrate.decide_move(M, row(status="running", ready_at=later), MAPPING, NOW)
    assert isinstance(move, migrate.Move)
    assert move.values["ready_at"] == later and move.values["dispatched_at"] is None and move.message is None


def test_a_pending_execution_stays_pending() -> None:
    move = migrate.decide_move(M, row(status="pending", ready_at=NOW - timedelta(seconds=1)), MAPPING, NOW)
    assert isinstance(move, migrate.Move)
    assert move.values["status"] == "pending" and move.message is not None


def test_only_a_failure_can_be_reopened() -> None:
    check_reopen("failed", "running")
    with pytest.raises(IllegalMove):
        check_reopen("completed", "running")
    with pytest.raises(IllegalMove):
        check_reopen("cancelled", "running")
