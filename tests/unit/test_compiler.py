"""The compiler lowers a definition to an immutable state machine with deterministic ids and a
version hash that changes exactly when behaviour-relevant shape changes."""

from __future__ import annotations

from typing import Any

import pytest

from durable_celery import Retry, Workflow, goto
from durable_celery.compiler import END, compile_workflow
from durable_celery.engine.transitions import check_shape, interpret_result, resolve
from durable_celery.errors import BranchNoMatch, DefinitionChanged


def build(retry_second: int = 1, extra_step: bool = False) -> Workflow:
    wf = Workflow("docs")
    wf.step(name="receive")(lambda ctx: ctx)
    with wf.branch(on=lambda ctx: ctx["type"]) as b:
        with b.case("invoice", "bill"):
            wf.step(name="extract")(lambda ctx: ctx)
            wf.step(name="validate", retry=Retry(max_attempts=retry_second))(lambda ctx: ctx)
        with b.case("receipt"):
            with wf.branch(on=lambda ctx: ctx.get("amount", 0) > 100) as inner:
                with inner.case(True):
                    wf.step(name="audit")(lambda ctx: ctx)
        with b.default():
            wf.step(name="review")(lambda ctx: ctx)
    wf.step(name="store")(lambda ctx: ctx)
    if extra_step:
        wf.step(name="notify")(lambda ctx: ctx)
    return wf


def test_steps_fall_through_and_every_clause_joins_after_the_branch() -> None:
    m = compile_workflow(build())
    assert m.entry == "receive"
    assert m.states["receive"].next == "branch:extract"
    assert m.states["extract"].next == "validate"
    assert m.states["validate"].next == "store"
    assert m.states["review"].next == "store"
    assert m.states["audit"].next == "store"
    assert m.states["store"].next == END


def test_the_same_definition_compiles_to_the_same_version_and_ids() -> None:
    a, b = compile_workflow(build()), compile_workflow(build())
    assert a.version == b.version
    assert {s: a.states[s].shape for s in a.states} == {s: b.states[s].shape for s in b.states}


def test_changing_a_step_option_changes_only_that_state_shape_and_the_version() -> None:
    a, b = compile_workflow(build()), compile_workflow(build(retry_second=3))
    assert a.version != b.version
    changed = {s for s in a.states if a.states[s].shape != b.states[s].shape}
    assert changed == {"validate"}


def test_adding_a_step_changes_the_shape_of_its_predecessor_only() -> None:
    a, b = compile_workflow(build()), compile_workflow(build(extra_step=True))
    changed = {s for s in a.states if a.states[s].shape != b.states[s].shape}
    assert changed == {"store"}


def test_check_shape_accepts_unchanged_nodes_and_names_changed_or_missing_ones() -> None:
    a, b = compile_workflow(build()), compile_workflow(build(retry_second=3))
    check_shape(b, "extract", a.states["extract"].shape)
    with pytest.raises(DefinitionChanged, match="validate"):
        check_shape(b, "validate", a.states["validate"].shape)
    with pytest.raises(DefinitionChanged, match="gone"):
        check_shape(b, "gone", "abc")


@pytest.mark.parametrize("ctx, expected", [
    ({"type": "invoice"}, "extract"),
    ({"type": "bill"}, "extract"),
    ({"type": "receipt", "amount": 500}, "audit"),
    ({"type": "receipt", "amount": 5}, BranchNoMatch),
    ({"type": "other"}, "review"),
])
def test_branches_resolve_to_the_first_step_of_the_matching_clause(ctx: dict[str, Any], expected: Any) -> None:
    m = compile_workflow(build())
    if isinstance(expected, str):
        assert resolve(m, "branch:extract", ctx) == expected
    else:
        with pytest.raises(expected):
            resolve(m, "branch:extract", ctx)


def test_a_case_for_one_does_not_match_true() -> None:
    wf = Workflow("bools")
    with wf.branch(on=lambda ctx: ctx["v"]) as b:
        with b.case(1):
            wf.step(name="one")(lambda ctx: ctx)
        with b.case(True):
            wf.step(name="yes")(lambda ctx: ctx)
    m = compile_workflow(wf)
    assert resolve(m, m.entry, {"v": True}) == "yes"
    assert resolve(m, m.entry, {"v": 1}) == "one"


def test_step_results_continue_in_order_or_jump_with_goto() -> None:
    m = compile_workflow(build())
    state = m.states["receive"]
    assert interpret_result(m, state, {"a": 1}) == ("branch:extract", {"a": 1})
    assert interpret_result(m, state, goto("store", {"b": 2})) == ("store", {"b": 2})
    with pytest.raises(Exception, match="returned list"):
        interpret_result(m, state, [1])


def test_the_machine_is_immutable() -> None:
    m = compile_workflow(build())
    with pytest.raises(TypeError):
        m.states["x"] = m.states["store"]  # type: ignore[index]
    with pytest.raises(AttributeError):
        m.entry = "store"  # type: ignore[misc]
