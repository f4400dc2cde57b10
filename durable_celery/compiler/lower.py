"""Lowering a definition tree to a flat state machine, with the static checks that need the
whole workflow (goto targets, compensation names)."""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from durable_celery.compiler.fingerprint import digest
from durable_celery.compiler.ir import END, State, StateMachine
from durable_celery.dsl.nodes import Node, StepNode, walk
from durable_celery.errors import DefinitionError

if TYPE_CHECKING:
    from durable_celery.dsl.workflow import Workflow


def compile_workflow(workflow: Workflow) -> StateMachine:
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
    )


def _lower_body(body: tuple[Node, ...], after: str, states: dict[str, State]) -> str:
    """Lower nodes so each falls through to the next and the last to ``after``; return the
    id of the first (``after`` for an empty body)."""
    follow = after
    for node in reversed(body):
        follow = _lower_node(node, follow, states)
    return follow


def _lower_node(node: Node, after: str, states: dict[str, State]) -> str:
    if isinstance(node, StepNode):
        shape = digest({
            "kind": node.kind, "id": node.name, "next": after, "retry": node.retry.describe(),
            "timeout": node.timeout, "queue": node.queue, "compensate": node.compensate, "returns": node.returns,
        })
        states[node.name] = State(id=node.name, kind=node.kind, next=after, shape=shape, step=node)
        return node.name
    cases = tuple((case.values, _lower_body(case.body, after, states)) for case in node.cases)
    default = _lower_body(node.default.body, after, states) if node.default is not None else None
    shape = digest({
        "kind": "branch", "id": node.name, "next": after,
        "cases": [[[repr(v) for v in values], target] for values, target in cases], "default": default,
    })
    states[node.name] = State(id=node.name, kind="branch", next=after, shape=shape, on=node.on,
                              cases=cases, default=default)
    return node.name


def _check_references(workflow: Workflow, body: tuple[Node, ...], states: dict[str, State]) -> None:
    step_names = {s.id for s in states.values() if s.kind != "branch"}
    for node in walk(body):
        if not isinstance(node, StepNode):
            continue
        if node.compensate is not None and node.compensate not in workflow.compensations:
            raise DefinitionError(workflow.name, f"compensate={node.compensate!r} names no compensation "
                                  f"(define it with @{workflow.name}.compensation)", node.name)
        for target in literal_goto_targets(node.fn):
            if target not in step_names:
                raise DefinitionError(workflow.name, f"goto({target!r}) names no step of this workflow", node.name)


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
