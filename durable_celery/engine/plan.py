"""What a deploy does to the in-flight executions (``durable plan``): a pure function of the
groups the database counted, the machines registered in the code being deployed and the
descriptions workers recorded of the versions they ran. No I/O (docs/deploys.md).

Each group (workflow, version, state, shape) gets one verdict:

- ``kept``: its version is registered beside the current one: it finishes on it;
- ``unchanged``: it runs on the current machine, which has the state with the same shape (or
  it stands on no state, or its version is the current one);
- ``changed``: the current machine has the state with another shape: ``changes`` lists the
  options that differ and a new successor, when the old version's description is stored;
- ``gone``: the current machine has no such state (``renamed to X`` when a new state of the
  same kind, options and successor appeared; else ``removed``), or the workflow is not
  registered at all.

``changed`` and ``gone`` strand the execution: the engine fails it with ``DefinitionChanged``
when it next moves (``engine/decide.py``'s ``locate``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from durable_celery.compiler.ir import END, StateMachine
from durable_celery.models import PLAN_VERDICTS, DeployPlan, PlanGroup, PlanVersion, WorkflowPlan

#: (workflow, version hash, current node, node shape, count, example ids), as state/versions.py counts
Group = tuple[str, str, "str | None", "str | None", int, Sequence[str]]
#: a stored description: {"label": ..., "states": {state id: {kind, next, shape, spec}}}
Stored = Mapping[tuple[str, str], Mapping[str, Any]]


def plan(groups: Sequence[Group], registered: Mapping[str, Sequence[StateMachine]], stored: Stored) -> DeployPlan:
    """Classify every group against the registered machines (each name's current one last)."""
    by_workflow: dict[str, list[Group]] = {}
    for group in groups:
        by_workflow.setdefault(group[0], []).append(group)
    names = sorted({*registered, *by_workflow})
    return DeployPlan([_workflow(name, by_workflow.get(name, []), list(registered.get(name, ())), stored)
                       for name in names])


def _workflow(name: str, groups: list[Group], machines: list[StateMachine], stored: Stored) -> WorkflowPlan:
    current = machines[-1] if machines else None
    kept = {m.version: m for m in machines[:-1]}
    out = [classify(g, current, kept, stored) for g in sorted(groups, key=lambda g: (g[1], g[2] or "", g[3] or ""))]
    counts = dict.fromkeys(PLAN_VERDICTS, 0)
    for group in out:
        counts[group.verdict] += group.count
    pinned: dict[str, int] = {}
    for group in out:
        pinned[group.version] = pinned.get(group.version, 0) + group.count
    versions = [PlanVersion(m.version, m.label, m is current, pinned.get(m.version, 0)) for m in machines]
    return WorkflowPlan(name, current is not None, current.version if current else None,
                        current.label if current else None, counts, out, versions)


def classify(group: Group, current: StateMachine | None, kept: Mapping[str, StateMachine], stored: Stored) -> PlanGroup:
    """One group's verdict (and how its state changed)."""
    workflow, version, node, shape, count, examples = group
    label = kept[version].label if version in kept else current.label if current and current.version == version \
        else (stored.get((workflow, version)) or {}).get("label")

    def made(verdict: str, changes: list[str] | None = None) -> PlanGroup:
        return PlanGroup(workflow, version, label, node, verdict, count, list(examples), changes or [])

    if current is None:
        return made("gone", ["workflow not registered"])
    if version in kept:
        return made("kept")
    if version == current.version or node is None or node == END:
        return made("unchanged")
    state = current.state(node)
    old = _old_state(workflow, version, node, shape, stored)
    if state is None:
        return made("gone", [_why_gone(node, old, current, stored.get((workflow, version)))])
    if shape is None or state.shape == shape:
        return made("unchanged")
    return made("changed", _changes(old, current.states_spec()[node]) if old is not None else [])


def _old_state(workflow: str, version: str, node: str, shape: str | None, stored: Stored) -> Mapping[str, Any] | None:
    """The stored description of the state the group stands on: in its own version's, else in
    any version of the workflow that had the state with that shape."""
    own = (stored.get((workflow, version)) or {}).get("states") or {}
    if node in own and (shape is None or own[node].get("shape") == shape):
        return own[node]  # type: ignore[no-any-return]
    for (name, _), description in sorted(stored.items()):
        states = description.get("states") or {}
        if name == workflow and node in states and states[node].get("shape") == shape:
            return states[node]  # type: ignore[no-any-return]
    return None


def _changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """How a state's description changed: the options that differ, then its successor."""
    before, after = old.get("spec") or {}, new.get("spec") or {}
    options = sorted(k for k in {*before, *after} if k not in ("id", "next") and before.get(k) != after.get(k))
    changes = [f"options: {', '.join(options)}"] if options else []
    if old.get("next") != new.get("next"):
        changes.append(f"successor: {old.get('next')} -> {new.get('next')}")
    return changes


def _why_gone(node: str, old: Mapping[str, Any] | None, current: StateMachine,
              description: Mapping[str, Any] | None) -> str:
    """``renamed to X`` when exactly one state new in the current machine has the kind, options
    and successor the gone one had; else ``removed``."""
    if old is None:
        return "removed"
    before = (description or {}).get("states") or {}
    spec = {k: v for k, v in (old.get("spec") or {}).items() if k != "id"}
    candidates = [s.id for s in current.states.values()
                  if s.id not in before and s.kind == old.get("kind")
                  and {k: v for k, v in s.spec.items() if k != "id"} == spec]
    return f"renamed to {candidates[0]}" if len(candidates) == 1 else "removed"
