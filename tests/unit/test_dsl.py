"""Workflow definitions: mistakes fail at definition time with a DefinitionError that names the
workflow and the step."""

from __future__ import annotations

import pytest

from durable_celery import DefinitionError, Retry, Workflow, goto, minutes, seconds
from durable_celery.compiler import compile_workflow
from durable_celery.errors import InvalidInput


def test_duplicate_step_names_are_rejected_naming_workflow_and_step() -> None:
    wf = Workflow("orders")

    @wf.step
    def charge(ctx):
        return ctx

    with pytest.raises(DefinitionError) as err:
        wf.step(name="charge")(lambda ctx: ctx)
    assert err.value.workflow == "orders" and err.value.step == "charge"
    assert "orders" in str(err.value) and "charge" in str(err.value)


def test_a_step_name_inside_a_branch_must_be_unique_across_the_workflow() -> None:
    wf = Workflow("nested")

    @wf.step
    def route(ctx):
        return ctx

    with pytest.raises(DefinitionError, match="duplicate step name"):
        with wf.branch(on=lambda ctx: ctx["k"]) as b:
            with b.case("a"):
                wf.step(name="route")(lambda ctx: ctx)


def test_goto_to_an_unknown_step_fails_when_the_workflow_compiles() -> None:
    wf = Workflow("jumps")

    @wf.decision
    def decide(ctx):
        return goto("nowhere", ctx) if ctx.get("x") else ctx

    with pytest.raises(DefinitionError, match="goto\\('nowhere'\\)") as err:
        compile_workflow(wf)
    assert err.value.step == "decide"


def test_case_used_outside_its_branch_block_is_rejected() -> None:
    wf = Workflow("late_case")
    with wf.branch(on=lambda ctx: 1) as b:
        with b.case(1):
            wf.step(name="one")(lambda ctx: ctx)
    with pytest.raises(DefinitionError, match="outside"):
        with b.case(2):
            pass


def test_steps_directly_inside_a_branch_but_outside_any_case_are_rejected() -> None:
    wf = Workflow("loose")
    with pytest.raises(DefinitionError, match="outside any case"):
        with wf.branch(on=lambda ctx: 1) as b:
            wf.step(name="loose_step")(lambda ctx: ctx)
            with b.case(1):
                wf.step(name="inside")(lambda ctx: ctx)


def test_a_step_function_with_the_wrong_arity_is_rejected() -> None:
    wf = Workflow("arity")
    with pytest.raises(DefinitionError, match="must take 1 positional") as err:
        @wf.step
        def two_args(ctx, extra):
            return ctx
    assert err.value.step == "two_args"


def test_a_non_callable_branch_selector_is_rejected() -> None:
    wf = Workflow("selector")
    with pytest.raises(DefinitionError, match="must be callable"):
        with wf.branch(on="doc_type"):  # type: ignore[arg-type]
            pass


def test_unknown_step_options_and_bad_option_values_are_rejected() -> None:
    wf = Workflow("options")
    with pytest.raises(DefinitionError, match="unknown step option"):
        wf.step(retries=3)
    with pytest.raises(DefinitionError, match="retry must be a Retry"):
        wf.step(retry={"max_attempts": 3}, name="r")(lambda ctx: ctx)
    with pytest.raises(DefinitionError, match="timeout"):
        wf.step(timeout=-1, name="neg")(lambda ctx: ctx)


def test_compensate_must_name_a_defined_compensation() -> None:
    wf = Workflow("saga")
    wf.step(compensate="refund", name="charge")(lambda ctx: ctx)
    with pytest.raises(DefinitionError, match="refund"):
        compile_workflow(wf)

    @wf.compensation(retry=Retry(max_attempts=2))
    def refund(ctx):
        return ctx

    assert compile_workflow(wf).states["charge"].step.compensate == "refund"


@pytest.mark.parametrize("kwargs, message", [
    ({"max_attempts": 0}, "max_attempts"),
    ({"backoff": "fibonacci"}, "backoff"),
    ({"base": -1}, "base"),
    ({"max_backoff": "1h"}, "max_backoff"),
])
def test_retry_options_are_validated_when_built(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        Retry(**kwargs)


def test_an_empty_workflow_and_a_branch_without_clauses_are_rejected() -> None:
    with pytest.raises(DefinitionError, match="at least one step"):
        compile_workflow(Workflow("empty"))
    wf = Workflow("no_clauses")
    with pytest.raises(DefinitionError, match="no case"):
        with wf.branch(on=lambda ctx: 1):
            pass


def test_options_are_recorded_on_the_compiled_step() -> None:
    wf = Workflow("recorded", timeout=minutes(5), queue="orders")
    wf.step(retry=Retry(max_attempts=3, backoff="linear", base=2), timeout=seconds(30), queue="payments",
            name="pay")(lambda ctx: ctx)
    machine = compile_workflow(wf)
    step = machine.states["pay"].step
    assert (step.retry.max_attempts, step.retry.backoff, step.timeout, step.queue) == (3, "linear", 30.0, "payments")
    assert machine.timeout == 300.0 and machine.queue == "orders"
