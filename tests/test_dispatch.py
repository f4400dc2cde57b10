"""Dispatch: one Celery task per step, or continuation; per-step queues map to Celery queues."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from tests.conftest import Project
from tests.proj.workflows import SPECIAL_QUEUE

Factory = Callable[..., Project]


def tasks_received(log: str, workflow: str) -> int:
    """Step tasks of ``workflow`` a worker received (logged under their shadow name, workflow.step)."""
    return len(re.findall(rf"Task {workflow}\.\w+\[[0-9a-f-]+\] received", log))


@pytest.mark.parametrize("mode, expected_tasks", [("per_step", 3), ("continuation", 1)])
def test_per_step_mode_runs_one_task_per_step_and_continuation_runs_them_in_one(
        project_factory: Factory, mode: str, expected_tasks: int) -> None:
    p = project_factory("redis", dispatch_mode=mode)
    w = p.worker()
    execution = p.wait(p.durable.start("pipeline", {}))
    assert execution.status == "completed" and len(execution.steps) == 3
    assert tasks_received(w.log(), "pipeline") == expected_tasks


@pytest.mark.parametrize("broker", ["redis", "amqp"])
def test_a_step_with_its_own_queue_runs_on_a_worker_of_that_queue(project_factory: Factory, broker: str) -> None:
    p = project_factory(broker, dispatch_mode="continuation")
    # Given one worker on the engine's queue and one on the special queue only
    p.worker()
    special = p.worker(queues=[SPECIAL_QUEUE])
    execution = p.wait(p.durable.start("routed", {}))
    # Then the middle step ran there, even in continuation mode, and the rest came back
    assert execution.status == "completed"
    assert (execution.context["first_queue"], execution.context["second_queue"],
            execution.context["third_queue"]) == (p.queue, SPECIAL_QUEUE, p.queue)
    assert tasks_received(special.log(), "routed") == 1


def test_a_worker_whose_workflow_definitions_are_broken_refuses_to_start(project_factory: Factory) -> None:
    p = project_factory("redis")
    proc = p.worker(env={"DT_BROKEN": "1"}, start=False)
    with pytest.raises(RuntimeError, match="exited with 78"):
        proc.start()
    assert "cannot start" in proc.log() and "DefinitionError" in proc.log() and "wrong_arity" in proc.log()
