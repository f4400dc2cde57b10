"""``durable plan`` as a pure function: the groups the database counted, the machines the code
being deployed registers and the descriptions stored of the old versions go in; a verdict per
group comes out. No database, no broker."""

from __future__ import annotations

from typing import Any

import pytest

from durable_celery import DefinitionError, Retry, Workflow
from durable_celery.compiler import StateMachine, compile_workflow
from durable_celery.engine.plan import plan
from durable_celery.registry import Registry


def order(*steps: str, version: int | str | None = None, retry: Retry | None = None,
          retried: str | None = None) -> Workflow:
    """A workflow of one-line steps named ``steps``; ``retried`` takes ``retry``."""
    workflow = Workflow("order", version=version)
    for name in steps:
        options: dict[str, Any] = {"retry": retry} if name == retried and retry else {}
        workflow.step(name=name, **options)(lambda ctx: ctx)
    return workflow


def stored(*machines: StateMachine) -> dict[tuple[str, str], dict[str, Any]]:
    """What workers that ran these machines recorded."""
    return {(m.workflow, m.version): {"label": m.label, "states": m.states_spec()} for m in machines}


def at(machine: StateMachine, node: str, count: int = 3) -> tuple[str, str, str, str, int, list[str]]:
    """A group of ``count`` executions standing on ``node`` of ``machine``."""
    return (machine.workflow, machine.version, node, machine.states[node].shape, count, ["e-1", "e-2"])


def test_a_state_the_new_code_keeps_as_it_was_is_unchanged_even_with_a_step_added_before_it() -> None:
    # Given executions waiting in "wait_go" of version 1
    old = compile_workflow(order("reserve", "wait_go", "ship"))
    # When the new code adds a step before the wait
    new = compile_workflow(order("reserve", "fraud_check", "wait_go", "ship"))
    made = plan([at(old, "wait_go")], {"order": [new]}, stored(old))
    # Then they are unchanged: the wait and what follows it are the same
    group = made.workflow("order").groups[0]  # type: ignore[union-attr]
    assert (group.verdict, group.count, group.examples, group.changes) == ("unchanged", 3, ["e-1", "e-2"], [])
    assert made.ok and made.stranded == 0


def test_a_renamed_state_is_gone_and_the_plan_names_its_new_name() -> None:
    old = compile_workflow(order("reserve", "wait_go", "ship"))
    new = compile_workflow(order("reserve", "await_go", "ship"))
    made = plan([at(old, "wait_go")], {"order": [new]}, stored(old))
    group = made.workflow("order").groups[0]  # type: ignore[union-attr]
    assert (group.verdict, group.changes) == ("gone", ["renamed to await_go"])
    assert not made.ok and made.stranded == 3


def test_a_removed_state_is_gone() -> None:
    old = compile_workflow(order("reserve", "wait_go", "ship"))
    new = compile_workflow(order("reserve", "ship"))
    group = plan([at(old, "wait_go")], {"order": [new]}, stored(old)).workflows[0].groups[0]
    assert (group.verdict, group.changes) == ("gone", ["removed"])


def test_a_changed_retry_policy_is_a_changed_option() -> None:
    old = compile_workflow(order("reserve", "wait_go", "ship"))
    new = compile_workflow(order("reserve", "wait_go", "ship", retried="wait_go", retry=Retry(max_attempts=5)))
    group = plan([at(old, "wait_go")], {"order": [new]}, stored(old)).workflows[0].groups[0]
    assert (group.verdict, group.changes) == ("changed", ["options: retry"])


def test_a_renamed_successor_is_a_changed_successor() -> None:
    old = compile_workflow(order("reserve", "wait_go", "ship"))
    new = compile_workflow(order("reserve", "wait_go", "dispatch"))
    group = plan([at(old, "wait_go")], {"order": [new]}, stored(old)).workflows[0].groups[0]
    assert (group.verdict, group.changes) == ("changed", ["successor: ship -> dispatch"])


def test_without_a_stored_description_the_hash_still_tells_changed_from_unchanged() -> None:
    old = compile_workflow(order("reserve", "wait_go", "ship"))
    new = compile_workflow(order("reserve", "wait_go", "dispatch"))
    made = plan([at(old, "wait_go"), at(old, "reserve", 2)], {"order": [new]}, {})
    verdicts = {g.state: (g.verdict, g.changes) for g in made.workflows[0].groups}
    assert verdicts == {"wait_go": ("changed", []), "reserve": ("unchanged", [])}
    assert made.workflows[0].counts == {"kept": 0, "unchanged": 2, "changed": 3, "gone": 0}


def test_executions_of_an_old_version_kept_registered_are_kept_and_nothing_is_stranded() -> None:
    v1 = compile_workflow(order("reserve", "wait_go", "ship", version=1))
    v2 = compile_workflow(order("reserve", "await_go", "ship", version=2))
    made = plan([at(v1, "wait_go"), at(v2, "await_go", 1)], {"order": [v1, v2]}, stored(v1, v2))
    plan_of = made.workflow("order")
    assert plan_of is not None and made.ok
    assert {g.version_label: g.verdict for g in plan_of.groups} == {1: "kept", 2: "unchanged"}
    assert [(v.label, v.current, v.executions, v.needed) for v in plan_of.versions] == [(1, False, 3, True),
                                                                                         (2, True, 1, True)]


def test_a_kept_version_no_execution_runs_on_any_more_is_reported_as_not_needed() -> None:
    v1 = compile_workflow(order("reserve", "wait_go", "ship", version=1))
    v2 = compile_workflow(order("reserve", "await_go", "ship", version=2))
    made = plan([at(v2, "await_go")], {"order": [v1, v2]}, {})
    assert [v.label for v in made.workflows[0].unneeded_versions] == [1]


def test_executions_of_a_workflow_the_new_code_does_not_register_are_stranded() -> None:
    old = compile_workflow(order("reserve", "wait_go"))
    made = plan([at(old, "wait_go")], {}, stored(old))
    assert not made.workflows[0].registered and made.workflows[0].groups[0].changes == ["workflow not registered"]
    assert made.stranded == 3


def test_the_plan_as_json_names_every_verdict() -> None:
    old = compile_workflow(order("reserve", "wait_go", "ship"))
    new = compile_workflow(order("reserve", "await_go", "ship"))
    data = plan([at(old, "wait_go")], {"order": [new]}, stored(old)).as_dict()
    assert data["ok"] is False and data["stranded"] == 3
    assert data["workflows"][0]["groups"][0]["verdict"] == "gone"


# -- the registry: versions side by side ---------------------------------------------------------


def test_two_definitions_of_one_name_need_distinct_version_labels() -> None:
    registry = Registry([])
    registry.register(order("a", "b"))
    with pytest.raises(DefinitionError, match="two different workflows"):
        registry.register(order("a", "c"))
    registry.register(order("a", "c", version=2))
    assert registry.get("order").label == 2  # type: ignore[union-attr]


def test_new_starts_use_the_highest_label_and_an_execution_keeps_the_machine_of_its_hash() -> None:
    v1, v3, v2 = order("a", "b", version=1), order("a", "d", version=3), order("a", "c", version=2)
    registry = Registry([v1, v3, v2])
    current = registry.get("order")
    assert current is not None and current.label == 3
    old = registry.machine_for(v1)
    assert registry.get("order", old.version) is old
    assert registry.get("order", "no-such-hash") is current  # not registered: the current one
    assert [m.label for m in registry.versions("order")] == [1, 2, 3]


def test_version_labels_of_one_workflow_are_all_ints_or_all_strings() -> None:
    registry = Registry([order("a", version=1)])
    registry.load()
    with pytest.raises(DefinitionError, match="cannot be ordered"):
        registry.register(order("b", version="2024-06"))


def test_the_label_is_not_part_of_the_version_hash() -> None:
    assert compile_workflow(order("a", "b")).version == compile_workflow(order("a", "b", version=7)).version
