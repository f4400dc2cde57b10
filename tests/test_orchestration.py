"""Orchestration on real workers: workflows that call workflows (suspended durably, idempotent
per ref, nested, inside parallel and foreach, cancelled with their parent), events emitted by
name to every execution waiting for them, and checkpoints inside a step that never run twice."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from durable_celery import InvalidInput
from durable_celery.context import NotInStep
from durable_celery.orchestration import call_workflow, emit_event
from tests.conftest import Project
from tests.test_faults import wait_for_effect

Factory = Callable[..., Project]


def waiting(p: Project, execution_id: str) -> None:
    p.wait(execution_id, statuses={"waiting"}, timeout=20)


def only_child(p: Project, parent_id: str) -> str:
    children = p.durable.list_children(parent_id)
    assert len(children) == 1, children
    return children[0].id


def held_checkout(p: Project, **input: object) -> tuple[str, str]:
    """Start a checkout whose payment child holds (waits for "release"); (parent id, child id)
    once both are waiting."""
    parent_id = p.durable.start("checkout", {"hold": True, **input})
    waiting(p, parent_id)
    child_id = only_child(p, parent_id)
    waiting(p, child_id)
    return parent_id, child_id


# -- child workflows ----------------------------------------------------------------------------------

def test_a_called_child_runs_while_its_parent_waits_and_returns_its_final_context(running_project: Project) -> None:
    p = running_project
    parent_id, child_id = held_checkout(p, amount=7)
    # The parent holds no worker while its child runs; the child knows its parent
    assert p.sql("SELECT lease_owner FROM {schema}.workflow_executions WHERE id = :id", id=parent_id)[0][0] is None
    child = p.durable.get_execution(child_id)
    assert child.parent_id == parent_id and child.workflow == "payment"
    assert p.durable.get_execution(parent_id).children == [child_id]
    p.durable.send_event(child_id, "release")
    parent = p.wait(parent_id)
    assert parent.status == "completed"
    assert parent.context["payment"] == {"amount": 7, "hold": True, "charged": 7}
    assert p.durable.list_children(parent_id, status="completed")[0].id == child_id
    assert p.durable.list_children(parent_id, status="failed") == []
    assert p.effects(child_id) == {"charge": 2}  # ran, waited, ran again


def test_a_child_that_fails_raises_child_workflow_error_in_its_caller(running_project: Project) -> None:
    p = running_project
    caught = p.wait(p.durable.start("checkout", {"amount": 3, "fail": True, "catch": True}))
    assert caught.status == "completed"
    failed = caught.context["child_failed"]
    assert failed["status"] == "failed" and "card declined for 3" in failed["message"]
    assert failed["child_id"] == only_child(p, caught.id)
    # Uncaught, it fails the step; the step's retry gets the same failed child, not a new one
    parent = p.wait(p.durable.start("checkout", {"amount": 4, "fail": True}))
    assert parent.status == "failed"
    assert parent.error is not None and parent.error["type"] == "ChildWorkflowError"
    assert [s.status for s in parent.steps if s.step_name == "pay"] == ["failed", "failed"]
    assert p.effects(only_child(p, parent.id)) == {"charge": 1}


def test_a_call_past_its_timeout_returns_the_timeout_value_and_leaves_the_child_running(
        running_project: Project) -> None:
    p = running_project
    parent = p.wait(p.durable.start("checkout", {"amount": 1, "hold": True, "timeout": 1}))
    assert parent.status == "completed" and parent.context["payment"] == "child_timeout"
    child_id = only_child(p, parent.id)
    assert p.durable.get_execution(child_id).status == "waiting"
    p.durable.cancel(child_id)


def test_workflows_nest_three_levels_deep(running_project: Project) -> None:
    p = running_project
    top = p.wait(p.durable.start("level_a", {}))
    assert top.status == "completed" and top.context == {"path": ["a", "b", "c"]}
    middle = only_child(p, top.id)
    assert p.durable.get_execution(middle).workflow == "level_b"
    assert p.durable.get_execution(only_child(p, middle)).workflow == "level_c"


def test_children_are_called_from_parallel_branches_and_foreach_iterations(running_project: Project) -> None:
    p = running_project
    execution = p.wait(p.durable.start("fan_calls", {}), timeout=60)
    assert execution.status == "completed", execution.error
    children = p.durable.list_children(execution.id)
    assert sorted(c.context["charged"] for c in children) == [1, 2, 10, 20, 30]
    assert {c.status for c in children} == {"completed"}
    assert all(c.parent_id != execution.id for c in children)  # each was called by its branch or iteration


def test_started_children_run_on_their_own_once_per_ref_across_retries(running_project: Project) -> None:
    p = running_project
    execution = p.wait(p.durable.start("launcher", {}))
    assert execution.status == "completed"
    ctx = execution.context
    assert ctx["first"] == ctx["again"] != ctx["other"]
    children = p.durable.list_children(execution.id)
    assert sorted(c.id for c in children) == sorted([ctx["first"], ctx["other"]])  # not four: the retry reused them
    for child in children:
        assert p.wait(child.id).status == "completed"


def test_cancelling_a_parent_cancels_its_active_children(running_project: Project) -> None:
    p = running_project
    parent_id, child_id = held_checkout(p, amount=2)
    p.durable.cancel(parent_id, reason="customer left")
    assert p.wait(parent_id).status == "cancelled"
    child = p.wait(child_id)
    assert child.status == "cancelled" and child.error is not None
    assert child.error["message"] == "parent cancelled"


def test_cancel_with_compensate_runs_the_compensations_of_the_children_too(running_project: Project) -> None:
    p = running_project
    parent_id = p.durable.start("vacation", {})
    waiting(p, parent_id)
    children = {c.workflow: c.id for c in p.durable.list_children(parent_id)}
    waiting(p, children["reservation"])
    waiting(p, children["payment"])
    p.durable.cancel(parent_id, compensate=True)
    assert p.wait(parent_id).status == "cancelled"  # nothing of its own to compensate
    reservation = p.wait(children["reservation"])
    assert reservation.status == "compensated"
    assert [r["compensation"] for r in reservation.compensation_results] == ["release_room"]
    assert p.wait(children["payment"]).status == "cancelled"  # it has no compensations


def test_a_child_cancelled_on_its_own_raises_in_its_caller(running_project: Project) -> None:
    p = running_project
    parent_id, child_id = held_checkout(p, amount=2, catch=True)
    p.durable.cancel(child_id, reason="fraud check")
    parent = p.wait(parent_id)
    assert parent.status == "completed"
    assert parent.context["child_failed"]["status"] == "cancelled"
    assert parent.context["child_failed"]["message"] == "fraud check"


def test_no_second_child_when_the_callers_worker_dies_right_after_starting_it(project_factory: Factory,
                                                                              tmp_path: Path) -> None:
    p = project_factory("redis")
    p.beat()
    marker = tmp_path / "fault.log"
    # Given a worker killed right after the call is recorded, before the child's message is sent
    p.worker(env={"DURABLE_FAULTS": "after_child_recorded:pay", "DURABLE_FAULT_MARKER": str(marker)})
    parent_id = p.durable.start("checkout", {"amount": 9})
    deadline = time.monotonic() + 20
    while not marker.exists():
        assert time.monotonic() < deadline, "the fault never fired"
        time.sleep(0.05)
    # When another worker takes over
    p.worker()
    parent = p.wait(parent_id, timeout=40)
    # Then the parent got its one child's result; the step re-ran but started nothing new
    assert parent.status == "completed" and parent.context["payment"]["charged"] == 9
    child_id = only_child(p, parent_id)
    assert p.effects(child_id) == {"charge": 1}
    assert p.effects(parent_id)["pay"] >= 2


def test_a_worker_killed_after_the_child_was_started_leaves_one_child(project_factory: Factory) -> None:
    p = project_factory("amqp")
    p.beat()
    doomed = p.worker()
    parent_id = p.durable.start("checkout", {"amount": 8, "linger": 30})
    deadline = time.monotonic() + 20
    while not p.durable.list_children(parent_id) or p.effects(parent_id).get("pay", 0) < 2:
        assert time.monotonic() < deadline, "the child never returned to its caller"
        time.sleep(0.05)
    doomed.kill()  # the caller re-ran after the child ended and lingers: killed mid-step
    p.worker()
    parent = p.wait(parent_id, timeout=60)
    assert parent.status == "completed" and parent.context["payment"]["charged"] == 8
    assert p.effects(only_child(p, parent_id)) == {"charge": 1}


# -- events emitted by name ---------------------------------------------------------------------------

def test_an_emitted_event_wakes_every_execution_waiting_for_it_once(running_project: Project) -> None:
    p = running_project
    order = int(time.monotonic() * 1000)
    name = f"packed:{order}"
    waiters = [p.durable.start("listener", {"name": name}) for _ in range(2)]
    twice = p.durable.start("listener", {"name": name, "twice": True, "second_timeout": 2})
    other = p.durable.start("listener", {"name": f"packed:{order + 1}", "timeout": 4})
    for execution_id in (*waiters, twice, other):
        waiting(p, execution_id)
    packer = p.durable.start("packer", {"order": order})
    for execution_id in (*waiters, twice):
        assert p.wait(execution_id).context["first"] == {"order": order}
    # Each took it once: the execution that waits for the name a second time times out there
    assert p.wait(twice).context["second"] == "no second"
    # The packer's step re-runs after its own wait: the event is not emitted again
    waiting(p, packer)
    late = p.durable.start("listener", {"name": name, "timeout": 1})  # started after the emit
    p.durable.send_event(packer, "continue")
    assert p.wait(packer).status == "completed"
    assert p.effects(packer) == {"pack": 2}
    assert p.sql("SELECT count(*) FROM {schema}.broadcasts WHERE name = :n", n=name)[0][0] == 1
    assert p.wait(other).context["first"] == "timeout"
    assert p.wait(late).context["first"] == "timeout"


def test_an_event_emitted_before_a_running_execution_waits_is_kept_for_it(running_project: Project) -> None:
    p = running_project
    name = f"shipped:{time.monotonic()}"
    # Given an execution already running whose wait comes later (it waits after a long first step)
    listener = p.durable.start("listener", {"name": name, "timeout": 10})
    # When the event is emitted from outside before it waits
    p.durable.emit_event(name, {"carrier": "ups"})
    assert p.wait(listener).context["first"] == {"carrier": "ups"}


# -- checkpoints inside a step ------------------------------------------------------------------------

def test_a_checkpoint_does_not_run_again_when_the_step_resumes_or_retries(running_project: Project) -> None:
    p = running_project
    execution_id = p.durable.start("charger", {"amount": 5, "confirm": True, "fail_once": True})
    waiting(p, execution_id)
    p.durable.send_event(execution_id, "settled")
    execution = p.wait(execution_id)
    assert execution.status == "completed"
    assert execution.context["charge"]["amount"] == 5
    assert execution.context["charge"]["charge_id"].startswith(f"ch_{execution_id}:")
    assert p.effects(execution_id) == {"charge_then_confirm": 1}  # charged once: two attempts, one resume


def test_a_checkpoint_is_not_run_again_after_its_worker_is_killed(project_factory: Factory) -> None:
    p = project_factory("redis")
    p.beat()
    doomed = p.worker()
    execution_id = p.durable.start("charger", {"amount": 6, "linger": 30})
    wait_for_effect(p, execution_id, "charge_then_confirm")
    time.sleep(0.3)  # the checkpoint's record commits right after the charge returns
    doomed.kill()
    p.worker()
    execution = p.wait(execution_id, timeout=60)
    assert execution.status == "completed" and execution.context["charge"]["amount"] == 6
    assert p.effects(execution_id) == {"charge_then_confirm": 1}


# -- bad input ----------------------------------------------------------------------------------------

def test_orchestration_calls_outside_a_step_raise_clearly(running_project: Project) -> None:
    with pytest.raises(NotInStep):
        call_workflow("payment", {})
    with pytest.raises(InvalidInput):
        emit_event("", None)
    with pytest.raises(InvalidInput):
        running_project.durable.emit_event("x", {"bad": object()})
