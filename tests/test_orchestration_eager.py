"""Orchestration in Celery's eager mode (``task_always_eager=True``): a workflow that calls a
child, checkpoints a charge, awaits a Celery task of the same app and emits an event runs to its
end inside ``start``, in this process, with the same journal as on workers."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from celery import signature

from durable_celery import ChildWorkflowError, Durable, TaskFailed, Workflow
from durable_celery.context import checkpoint
from durable_celery.orchestration import await_task, call_workflow, emit_event, start_workflow
from durable_celery.wait import wait_for_event
from tests.test_eager import eager_durable

RAN: Counter[str] = Counter()

child = Workflow("eager_child")


@child.step
def double(ctx: dict[str, Any]) -> dict[str, Any]:
    RAN["double"] += 1
    if ctx.get("fail"):
        raise ValueError("no doubling today")
    return {"doubled": ctx["n"] * 2}


parent = Workflow("eager_parent")


@parent.step
def orchestrate(ctx: dict[str, Any]) -> dict[str, Any]:
    RAN["orchestrate"] += 1
    charge = checkpoint("charge", _charge, ctx["n"])
    doubled = call_workflow(child, {"n": ctx["n"]}, ref="double")["doubled"]
    start_workflow(child, {"n": 0}, ref="side")
    squared = await_task(signature(ctx["square"], args=(doubled,)))
    emit_event(f"done:{ctx['key']}", {"squared": squared})
    try:
        call_workflow(child, {"n": 1, "fail": True}, ref="failing")
    except ChildWorkflowError as exc:
        failure = exc.status
    try:
        await_task(signature(ctx["broken"]))
    except TaskFailed as exc:
        broken = exc.error["message"] if exc.error else None
    return {"charge": charge, "doubled": doubled, "squared": squared, "failure": failure, "broken": broken}


def _charge(n: int) -> str:
    RAN["charge"] += 1
    return f"charged {n}"


listener = Workflow("eager_listener")


@listener.step
def listen(ctx: dict[str, Any]) -> dict[str, Any]:
    return {"heard": wait_for_event(f"done:{ctx['key']}")}


@pytest.fixture
def durable() -> Iterator[Durable]:
    RAN.clear()
    with eager_durable([parent, child, listener]) as engine:
        yield engine


def test_a_workflow_orchestrates_children_tasks_and_events_inside_start(durable: Durable) -> None:
    app = durable.app

    @app.task(name=f"square-{uuid.uuid4().hex[:6]}")
    def square(n: int) -> int:
        RAN["square"] += 1
        return n * n

    @app.task(name=f"broken-{uuid.uuid4().hex[:6]}")
    def broken() -> None:
        raise KeyError("missing part")

    key = uuid.uuid4().hex[:8]
    heard = durable.start(listener, {"key": key})
    assert durable.get_execution(heard).status == "waiting"
    # The step builds the signatures from the task names in its input (signatures are not JSON)
    execution_id = durable.start(parent, {"n": 3, "key": key, "square": square.name, "broken": broken.name})
    execution = durable.get_execution(execution_id)
    assert execution.status == "completed", execution.error
    assert execution.context == {"charge": "charged 3", "doubled": 6, "squared": 36, "failure": "failed",
                                 "broken": "'missing part'"}
    assert RAN["charge"] == 1 and RAN["square"] == 1
    assert len(durable.list_children(execution_id)) == 3
    assert durable.get_execution(heard).context == {"heard": {"squared": 36}}
