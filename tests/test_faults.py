"""Crash tests with real worker processes killed by SIGKILL: every completed step is
checkpointed exactly once, no step whose checkpoint committed runs again, and the workflow
completes on another worker."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Project

Factory = Callable[..., Project]


def completed_rows(p: Project, execution_id: str) -> dict[str, int]:
    rows = p.sql("SELECT step_name, count(*) FROM {schema}.step_executions "
                 "WHERE execution_id = :id AND status = 'completed' GROUP BY step_name", id=execution_id)
    return {name: n for name, n in rows}


def wait_for_effect(p: Project, execution_id: str, step: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while step not in p.effects(execution_id):
        assert time.monotonic() < deadline, f"step {step} never started"
        time.sleep(0.05)


@pytest.mark.parametrize("broker, mode", [("redis", "per_step"), ("amqp", "per_step"), ("redis", "continuation")])
def test_a_worker_killed_mid_step_is_replaced_and_the_workflow_completes(project_factory: Factory, broker: str,
                                                                        mode: str) -> None:
    p = project_factory(broker, dispatch_mode=mode)
    p.beat()
    doomed = p.worker()
    # Given an execution whose second step is running on the doomed worker
    execution_id = p.durable.start("pipeline", {"second_sleep": 3})
    wait_for_effect(p, execution_id, "second")
    # When that worker is killed with SIGKILL, main process and pool alike, mid-step
    doomed.kill()
    killed_at = time.monotonic()
    # And another worker is running
    p.worker()
    execution = p.wait(execution_id, timeout=40)
    # Then the workflow completed once the lease expired (3 s), in seconds
    assert execution.status == "completed"
    assert time.monotonic() - killed_at < 20
    assert execution.context["trail"] == ["first", "second", "third"]
    # Every step is checkpointed exactly once; only the step that never committed ran again
    assert completed_rows(p, execution_id) == {"first": 1, "second": 1, "third": 1}
    assert p.effects(execution_id) == {"first": 1, "second": 2, "third": 1}
    assert [s.status for s in execution.steps] == ["completed"] * 3


@pytest.mark.parametrize("mode", ["per_step", "continuation"])
def test_a_worker_killed_between_checkpoint_commit_and_publish_loses_nothing(project_factory: Factory,
                                                                            tmp_path: Path, mode: str) -> None:
    p = project_factory("redis", dispatch_mode=mode)
    marker = tmp_path / "fault.log"
    # Given a worker that dies right after the checkpoint of `first` commits, before publishing
    p.worker(env={"DURABLE_FAULTS": "after_checkpoint:first", "DURABLE_FAULT_MARKER": str(marker)})
    p.beat()
    execution_id = p.durable.start("pipeline", {})
    execution = p.wait(execution_id, timeout=40)
    # Then the fault really fired, and the tick re-dispatched the lost transition
    assert marker.read_text().startswith("after_checkpoint:first:")
    assert execution.status == "completed"
    # And no step ran twice
    assert p.effects(execution_id) == {"first": 1, "second": 1, "third": 1}
    assert completed_rows(p, execution_id) == {"first": 1, "second": 1, "third": 1}


def test_the_same_transition_message_delivered_twice_has_no_double_effect(project_factory: Factory) -> None:
    p = project_factory("redis")
    # Given an execution whose first message is published three times before any worker runs
    execution_id = p.durable.start("pipeline", {})
    for _ in range(2):
        p.durable.dispatcher.send(execution_id, 0, workflow="pipeline", step="first", queue=p.queue, priority=0)
    # When two workers consume them concurrently
    p.worker()
    p.worker()
    execution = p.wait(execution_id)
    assert execution.status == "completed"
    assert p.effects(execution_id) == {"first": 1, "second": 1, "third": 1}
    # And late duplicates of every transition arrive after completion
    for seq in range(4):
        p.durable.dispatcher.send(execution_id, seq, workflow="pipeline", step=None, queue=p.queue, priority=0)
    time.sleep(2)
    # Then nothing ran again and nothing advanced twice
    assert p.effects(execution_id) == {"first": 1, "second": 1, "third": 1}
    again = p.durable.get_execution(execution_id, include_steps=True)
    assert again.status == "completed" and len(again.steps) == 3
    assert p.sql("SELECT seq FROM {schema}.workflow_executions WHERE id = :id", id=execution_id)[0][0] == 3


def test_a_changed_node_stops_an_in_flight_execution_with_definition_changed(project_factory: Factory) -> None:
    p = project_factory("redis")
    # Given executions started under definition 1, sitting at their first step
    first = p.durable.start("evolving", {})
    # When a worker deployed with definition 2 (the current step's retry changed) picks them up
    p.worker(env={"DT_VARIANT": "2"})
    execution = p.wait(first)
    # Then it stops clearly instead of running a node whose shape changed
    assert execution.status == "failed"
    assert execution.error["type"] == "DefinitionChanged" and "'begin'" in execution.error["message"]
    assert execution.steps == []


def test_a_change_elsewhere_in_the_definition_lets_an_in_flight_execution_go_on(project_factory: Factory) -> None:
    p = project_factory("redis")
    execution_id = p.durable.start("evolving", {})
    # A deploy that changed only a later step (definition 3) runs it to the end
    p.worker(env={"DT_VARIANT": "3"})
    execution = p.wait(execution_id)
    assert execution.status == "completed"
    assert execution.context == {"begun_by": "3", "ended_by": "3"}
