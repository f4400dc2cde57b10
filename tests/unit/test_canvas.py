"""Compiling Celery canvases into workflows: what compiles to what, the arguments each step
builds the way Celery would, and everything unsupported rejected at definition time with a
DefinitionError naming the offending part. No database, no broker: the steps are called directly."""

from __future__ import annotations

from typing import Any

import pytest
from celery import Celery, chain, chord, group

from durable_celery import DefinitionError, InvalidInput, TaskArgumentError, Workflow
from durable_celery.compiler import compile_workflow
from durable_celery.dsl.nodes import BranchNode, ParallelNode, StepNode

app = Celery("unit-canvas", set_as_current=False)


@app.task(name="unit.add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="unit.mul")
def mul(x: int, y: int) -> int:
    return x * y


@app.task(name="unit.tsum")
def tsum(values: list[int]) -> int:
    return sum(values)


@app.task(name="unit.echo")
def echo(*args: Any, **kwargs: Any) -> list[Any]:
    return [list(args), kwargs]


def steps(wf: Workflow) -> dict[str, StepNode]:
    """Every step of the workflow, by name, at any depth."""
    from durable_celery.dsl.nodes import walk

    return {n.name: n for n in walk(wf.body) if isinstance(n, StepNode)}


def test_a_chain_compiles_to_steps_in_order_named_after_their_tasks_uniquely() -> None:
    wf = Workflow.from_canvas("c", chain(add.s(1), mul.s(2), add.s(3), add.s(4)))
    assert [n.name for n in wf.body] == ["add", "mul", "add_2", "add_3"]
    again = Workflow.from_canvas("c", chain(add.s(1), mul.s(2), add.s(3), add.s(4)))
    assert [n.name for n in again.body] == ["add", "mul", "add_2", "add_3"]  # stable across deploys
    compile_workflow(wf)


def test_a_group_compiles_to_a_fail_fast_parallel_block_and_a_chain_member_to_a_sequence() -> None:
    wf = Workflow.from_canvas("g", group(add.s(1), chain(mul.s(2), add.s(3)), group(mul.s(5), echo.s())))
    [block] = wf.body
    assert isinstance(block, ParallelNode) and block.name == "group" and block.on_error == "fail_fast"
    # a nested group is flattened into the outer one, as Celery runs it
    assert [n.name for n in block.branches] == ["add", "chain", "mul_2", "echo"]
    sequence = block.branches[1]
    assert isinstance(sequence, BranchNode) and sequence.default is not None
    assert [n.name for n in sequence.default.body] == ["mul", "add_2"]
    # the block's result is the list of its members' results, in member order
    results = {"add": ["ok", {"result": 1}], "chain": ["ok", {"result": 2}], "mul_2": ["ok", {"result": 3}],
               "echo": ["ok", {"result": 4}]}
    assert block.into is not None and block.into({"args": [0]}, results) == {"result": [1, 2, 3, 4]}
    compile_workflow(wf)


def test_a_chord_compiles_to_a_parallel_block_followed_by_its_body() -> None:
    wf = Workflow.from_canvas("ch", chain(add.s(1), chord([mul.s(2), mul.s(3)], tsum.s())))
    assert [n.name for n in wf.body] == ["add", "chord", "tsum"]
    compile_workflow(wf)


def test_the_first_steps_take_the_workflow_input_and_the_others_the_previous_result() -> None:
    wf = Workflow.from_canvas("args", chain(group(echo.s(1, a=1), echo.si(9)), echo.s(2, b=2)))
    s = steps(wf)
    given = {"args": [7], "kwargs": {"k": 3}}
    # input args first, then the signature's partial args; the input's kwargs over the signature's
    assert s["echo"].fn(given) == {"result": [[7, 1], {"a": 1, "k": 3}]}
    assert s["echo_2"].fn(given) == {"result": [[9], {}]}  # immutable: its own arguments only
    assert s["echo_3"].fn({"result": [10, 20]}) == {"result": [[[10, 20], 2], {"b": 2}]}
    assert s["echo"].fn({}) == {"result": [[1], {"a": 1}]}  # both parts of the input are optional


def test_an_input_of_another_shape_fails_the_first_step_clearly() -> None:
    wf = Workflow.from_canvas("shape", add.s(1))
    with pytest.raises(InvalidInput, match=r"step 'add': the input of a workflow made from a canvas is"):
        steps(wf)["add"].fn({"x": 1})


def test_a_task_missing_an_argument_fails_naming_the_step_and_the_parameter() -> None:
    wf = Workflow.from_canvas("missing", chain(add.s(), mul.s()))
    with pytest.raises(TaskArgumentError) as err:
        steps(wf)["add"].fn({"args": [1]})
    assert (err.value.step, err.value.task, err.value.parameter) == ("add", "unit.add", "y")
    assert steps(wf)["add"].fn({"args": [1, 2]}) == {"result": 3}


def test_compensations_and_step_options_attach_to_steps_by_name() -> None:
    from durable_celery import Retry

    undone: list[Any] = []
    wf = Workflow.from_canvas("saga", chain(add.s(1), mul.s(2)), compensations={"add": undone.append},
                              step_options={"mul": {"retry": Retry(max_attempts=3), "timeout": 5}})
    s = steps(wf)
    assert s["add"].compensate == "undo_add" and s["mul"].compensate is None
    assert s["mul"].retry.max_attempts == 3 and s["mul"].timeout == 5
    assert wf.compensations["undo_add"].fn({"result": 41}) == {"result": None} and undone == [41]
    compile_workflow(wf)


def test_workflow_options_pass_through() -> None:
    wf = Workflow.from_canvas("opts", add.s(1), queue="legacy", timeout=60)
    assert wf.queue == "legacy" and wf.timeout == 60


@pytest.mark.parametrize("canvas, names", [
    (lambda: add.chunks([(1, 2), (3, 4)], 1), ["chunks is not supported", "foreach"]),
    (lambda: tsum.map([[1], [2]]), ["xmap (task.map) is not supported", "foreach"]),
    (lambda: add.starmap([(1, 2)]), ["xstarmap", "foreach"]),
    (lambda: add.s(1).set(countdown=5), ["'countdown'", "task 'unit.add'", "sleep"]),
    (lambda: add.s(1).set(eta="2030-01-01T00:00:00"), ["'eta'", "task 'unit.add'"]),
    (lambda: add.s(1).set(link=mul.s(2)), ["'link'", "task 'unit.add'", "callback"]),
    (lambda: add.s(1).on_error(echo.s()), ["'link_error'", "compensations"]),
    (lambda: add.s(1).set(time_limit=3), ["'time_limit'", "step_options"]),
    (lambda: add.s(1).set(expires=30), ["'expires'", "ignored"]),
    (lambda: chain(add.s(1), mul.s(2).set(countdown=1)), ["chain member 2", "task 'unit.mul'", "'countdown'"]),
    (lambda: chain(add.s(1), tsum.map([[1]])), ["chain member 2", "xmap"]),
    (lambda: group(add.s(1), add.chunks([(1, 2)], 1)), ["group member 2", "chunks"]),
    (lambda: chord([add.s(1), tsum.map([[1]])], tsum.s()), ["chord member 2", "xmap"]),
    (lambda: chord([add.s(1)], tsum.s().set(link=echo.s())), ["chord body", "'link'"]),
    (lambda: group(add.s(1), mul.s(2)).set(countdown=3), ["group", "'countdown'"]),
    (lambda: group([]), ["empty group"]),
    (lambda: chord([add.s(1)]), ["chord needs a body"]),
    (lambda: app.signature("unit.unknown"), ["'unit.unknown'", "not registered"]),
    (lambda: {"task": "unit.add", "args": [], "kwargs": {}, "options": {}, "subtask_type": None}, ["plain dicts"]),
    (lambda: 42, ["the canvas is not a Celery signature"]),
])
def test_unsupported_canvas_features_are_rejected_naming_the_offending_part(canvas: Any, names: list[str]) -> None:
    with pytest.raises(DefinitionError) as err:
        Workflow.from_canvas("bad", canvas())
    assert err.value.workflow == "bad"
    for name in names:
        assert name in str(err.value)


@pytest.mark.parametrize("kwargs, names", [
    ({"compensations": {"refund": echo}}, ["compensations names no step", "refund", "its steps: add, mul"]),
    ({"step_options": {"nope": {}}}, ["step_options names no step", "nope"]),
    ({"step_options": {"add": {"compensate": "x"}}}, ["may set queue, retry, timeout", "compensate"]),
    ({"compensations": {"add": 42}}, ["compensation of 'add' must be a task or a function"]),
])
def test_bad_compensations_and_step_options_are_rejected(kwargs: dict[str, Any], names: list[str]) -> None:
    with pytest.raises(DefinitionError) as err:
        Workflow.from_canvas("bad", chain(add.s(1), mul.s(2)), **kwargs)
    for name in names:
        assert name in str(err.value)
