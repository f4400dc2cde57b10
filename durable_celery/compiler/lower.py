"""Lowering a definition tree to a flat state machine, with the static checks that need the
whole workflow (goto targets, compensation names)."""

from __future__ import annotations

import ast
import inspect
import json
import textwrap
from collections.abc import Callable
from types import MappingProxyType
from typing import Any, Protocol

from durable_celery.compiler.fingerprint import digest
from durable_celery.compiler.ir import END, JOIN, State, StateMachine
from durable_celery.dsl.nodes import CompensationNode, ForEachNode, LoopNode, Node, ParallelNode, StepNode, walk
from durable_celery.errors import DefinitionError


class Definition(Protocol):
    """What the compiler reads of a workflow definition (``durable_celery.Workflow``)."""

    @property
    def name(self) -> str: ...
    @property
    def body(self) -> tuple[Node, ...]: ...
    @property
    def timeout(self) -> float | None: ...
    @property
    def queue(self) -> str | None: ...
    @property
    def start_deadline(self) -> float | None: ...
    @property
    def compensations(self) -> dict[str, CompensationNode]: ...
    @property
    def version(self) -> int | str | None: ...


def compile_workflow(workflow: Definition) -> StateMachine:
    """Compile a workflow definition into an immutable :class:`StateMachine`."""
    body = workflow.body
    if not body:
        raise DefinitionError(workflow.name, "a workflow needs at least one step")
    states: dict[str, State] = {}
    entry = _lower_body(body, END, states)
    _check_references(workflow, body, states)
    version = digest({"entry": entry, "shapes": sorted((s.id, s.shape) for s in states.values()),
                      "timeout": workflow.timeout, "queue": workflow.queue})
    return StateMachine(
        workflow=workflow.name,
        entry=entry,
        states=MappingProxyType(states),
        version=version,
        timeout=workflow.timeout,
        queue=workflow.queue,
        compensations=MappingProxyType(dict(workflow.compensations)),
        start_deadline=workflow.start_deadline,
        label=workflow.version,
    )


def _lower_body(body: tuple[Node, ...], after: str, states: dict[str, State], region: str = "") -> str:
    """Lower nodes so each falls through to the next and the last to ``after``; return the
    id of the first (``after`` for an empty body)."""
    follow = after
    for node in reversed(body):
        follow = _lower_node(node, follow, states, region)
    return follow


def _lower_node(node: Node, after: str, states: dict[str, State], region: str) -> str:
    """Lower one node; ``region`` names the parallel branch or foreach body it belongs to
    ("" at top level): a goto may not leave its region."""
    if isinstance(node, ParallelNode):
        branches = tuple((getattr(b, "returns", None) or b.name, _lower_node(b, JOIN, states, f"{node.name}/{b.name}"))
                         for b in node.branches)
        spec = {"kind": "parallel", "id": node.name, "next": after, "branches": branches, "on_error": node.on_error,
                "into": node.into is not None}
        shape = digest(spec)
        states[node.name] = State(id=node.name, kind="parallel", next=after, region=region, shape=shape,
                                  spec=_jsonable(spec), branches=branches,
                                  on_error=node.on_error, into=node.into)
        return node.name
    if isinstance(node, ForEachNode):
        body = _lower_body(node.body, JOIN, states, node.name)
        spec = {"kind": "foreach", "id": node.name, "next": after, "body": body, "concurrency": node.concurrency}
        shape = digest(spec)
        states[node.name] = State(id=node.name, kind="foreach", next=after, region=region, shape=shape,
                                  spec=_jsonable(spec), items=node.items,
                                  concurrency=node.concurrency, body=body)
        return node.name
    if isinstance(node, LoopNode):
        body = _lower_body(node.body, node.name, states, region)  # the last step loops back to the test
        spec = {"kind": "loop", "id": node.name, "next": after, "body": body, "max_iterations": node.max_iterations}
        shape = digest(spec)
        states[node.name] = State(id=node.name, kind="loop", next=after, region=region, shape=shape,
                                  spec=_jsonable(spec), condition=node.condition,
                                  max_iterations=node.max_iterations, body=body)
        return node.name
    if isinstance(node, StepNode):
        spec = {
            "kind": node.kind, "id": node.name, "next": after, "retry": node.retry.describe(),
            "timeout": node.timeout, "queue": node.queue, "compensate": node.compensate, "returns": node.returns,
            "takes_item": node.takes_item,
        }
        shape = digest(spec)
        states[node.name] = State(id=node.name, kind=node.kind, next=after, region=region, shape=shape,
                                  spec=_jsonable(spec), step=node)
        return node.name
    cases = tuple((case.values, _lower_body(case.body, after, states, region)) for case in node.cases)
    default = _lower_body(node.default.body, after, states, region) if node.default is not None else None
    spec = {
        "kind": "branch", "id": node.name, "next": after,
        "cases": [[[repr(v) for v in values], target] for values, target in cases], "default": default,
    }
    shape = digest(spec)
    states[node.name] = State(id=node.name, kind="branch", next=after, region=region, shape=shape,
                              spec=_jsonable(spec), on=node.on,
                              cases=cases, default=default)
    return node.name


def _jsonable(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` as its JSON text reads back (tuples as lists, odd values as their repr), so a
    stored description compares equal to a freshly compiled one."""
    return dict(json.loads(json.dumps(spec, sort_keys=True, default=repr)))


def _check_references(workflow: Definition, body: tuple[Node, ...], states: dict[str, State]) -> None:
    step_names = {s.id for s in states.values() if s.kind in ("step", "decision")}
    for node in walk(body):
        if not isinstance(node, StepNode):
            continue
        if node.compensate is not None and node.compensate not in workflow.compensations:
            raise DefinitionError(workflow.name, f"compensate={node.compensate!r} names no compensation "
                                  f"(define it with @{workflow.name}.compensation)", node.name)
        for target in literal_goto_targets(node.fn):
            if target not in step_names:
                raise DefinitionError(workflow.name, f"goto({target!r}) names no step of this workflow", node.name)
            if states[target].region != states[node.name].region:
                raise DefinitionError(workflow.name, f"goto({target!r}) would leave its parallel branch or foreach "
                                      "body; a goto stays inside the block it is in", node.name)


def literal_goto_targets(fn: Callable[..., Any]) -> list[str]:
    """The string literals passed as the first argument of ``goto(...)`` calls in ``fn``'s
    source; empty when the source is unavailable (then the target is checked at run time)."""
    try:
        source = textwrap.dedent(inspect.getsource(fn))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError, IndentationError):
        return []
    targets: list[str] = []
    for call in ast.walk(tree):
        if not isinstance(call, ast.Call) or not call.args:
            continue
        func = call.func
        called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
        first = call.args[0]
        if called == "goto" and isinstance(first, ast.Constant) and isinstance(first.value, str):
            targets.append(first.value)
    return targets
