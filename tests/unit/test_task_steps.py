"""Steps whose body is a Celery task (``wf.task_step``): how the context fills the task's
arguments, where its result goes, and the errors. The steps are called directly: no broker."""

from __future__ import annotations

import re
from typing import Any

import pytest
from celery import Celery

from durable_celery import DefinitionError, TaskArgumentError, Workflow, goto
from durable_celery.dsl.nodes import StepNode
from durable_celery.runtime.start_task import chained_input, idempotency_key

app = Celery("unit-tasks", set_as_current=False)


@app.task(name="billing.charge")
def charge(order_id: str, amount: int, currency: str = "EUR") -> dict[str, Any]:
    return {"charge_id": f"ch-{order_id}", "amount": amount, "currency": currency}


@app.task(name="billing.bound", bind=True)
def bound(self: Any, order_id: str) -> list[Any]:
    return [self.name, order_id, self.request.called_directly]


def only_step(wf: Workflow) -> StepNode:
    [node] = wf.body
    assert isinstance(node, StepNode)
    return node


def test_parameters_are_filled_by_name_and_the_result_stored_under_the_step_name() -> None:
    wf = Workflow("w")
    assert wf.task_step(charge) is charge  # the task is returned unchanged
    step = only_step(wf)
    assert step.name == "charge"
    ctx = {"order_id": "o1", "amount": 30, "note": "kept"}
    assert step.fn(ctx) == {**ctx, "charge": {"charge_id": "ch-o1", "amount": 30, "currency": "EUR"}}
    assert step.fn({**ctx, "currency": "USD"})["charge"]["currency"] == "USD"


def test_a_bound_task_sees_its_own_request() -> None:
    wf = Workflow("w")
    wf.task_step(bound, into="seen")
    assert only_step(wf).fn({"order_id": "o2"}) == {"order_id": "o2", "seen": ["billing.bound", "o2", True]}


def test_explicit_args_and_kwargs_replace_the_mapping_by_name() -> None:
    wf = Workflow("w")
    wf.task_step(charge, args=lambda ctx: [ctx["order"]["id"]], kwargs=lambda ctx: {"amount": ctx["total"]},
                 into="payment", name="pay")
    step = only_step(wf)
    assert step.name == "pay"
    assert step.fn({"order": {"id": "o3"}, "total": 9})["payment"]["amount"] == 9


def test_into_a_function_decides_the_next_context_or_jumps() -> None:
    wf = Workflow("w")
    wf.task_step(charge, into=lambda ctx, value: {"id": value["charge_id"]})
    assert only_step(wf).fn({"order_id": "o4", "amount": 1}) == {"id": "ch-o4"}
    wf2 = Workflow("w2")
    wf2.task_step(charge, into=lambda ctx, value: goto("done", ctx))
    assert only_step(wf2).fn({"order_id": "o4", "amount": 1}).target == "done"


def test_a_missing_required_argument_fails_the_step_naming_it_and_the_parameter() -> None:
    wf = Workflow("w")
    wf.task_step(charge)
    with pytest.raises(TaskArgumentError) as err:
        only_step(wf).fn({"order_id": "o5"})
    assert (err.value.step, err.value.task, err.value.parameter) == ("charge", "billing.charge", "amount")
    assert "its keys: order_id" in str(err.value)
    wf2 = Workflow("w2")
    wf2.task_step(charge, args=lambda ctx: ["o5"])
    with pytest.raises(TaskArgumentError, match="needs argument 'amount', not given by args=/kwargs="):
        only_step(wf2).fn({})


@pytest.mark.parametrize("call, message", [
    (lambda wf: wf.task_step(lambda order_id: None), "needs a Celery task"),
    (lambda wf: wf.task_step(charge, colour="red"), "unknown step option"),
    (lambda wf: wf.task_step(charge, into=3), "into=...) must be a key or a callable"),
    (lambda wf: wf.task_step(charge, args=[1]), "args=...) must be a callable of the context"),
])
def test_definition_mistakes_are_rejected(call: Any, message: str) -> None:
    with pytest.raises(DefinitionError, match=re.escape(message)):
        call(Workflow("w"))


def test_a_task_step_is_refused_inside_a_foreach_body() -> None:
    wf = Workflow("w")
    with pytest.raises(DefinitionError, match="inside a foreach body"), \
            wf.foreach("each", items=lambda ctx: ctx["items"]):
        wf.task_step(charge)


def test_retry_timeout_and_compensate_options_apply_as_for_any_step() -> None:
    from durable_celery import Retry

    wf = Workflow("w")
    wf.task_step(charge, retry=Retry(max_attempts=4), timeout=10, compensate="refund", queue="billing")
    step = only_step(wf)
    assert (step.retry.max_attempts, step.timeout, step.compensate, step.queue) == (4, 10, "refund", "billing")


@pytest.mark.parametrize("input, previous, expected", [
    ({"a": 1}, (), {"a": 1}),
    (None, (), {}),
    ({"a": 1}, ({"a": 2, "b": 3},), {"a": 2, "b": 3}),   # a dict result is merged over the input
    ({"a": 1}, (None,), {"a": 1}),                      # None is ignored
    ({"a": 1}, ([1, 2],), {"a": 1, "previous": [1, 2]}),  # anything else goes under "previous"
    ({}, (7,), {"previous": 7}),
])
def test_a_started_workflows_input_from_the_previous_result_in_a_chain(input: Any, previous: tuple[Any, ...],
                                                                        expected: dict[str, Any]) -> None:
    assert chained_input("wf", input, previous) == expected


def test_the_start_tasks_idempotency_key_comes_from_the_celery_task_id() -> None:
    assert idempotency_key("abc") == "celery-task:abc"
    assert idempotency_key(None) is None
    long = idempotency_key("x" * 300)
    assert long is not None and len(long) <= 255 and long == idempotency_key("x" * 300)


def test_a_task_given_to_step_with_the_wrong_arity_points_to_task_step() -> None:
    with pytest.raises(DefinitionError, match=re.escape("it is a Celery task: wf.task_step(task) runs it")):
        Workflow("w").step(charge)
