"""Frozen nodes of a workflow definition tree, as the DSL builds it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Union

from durable_celery.dsl.options import Retry

StepKind = Literal["step", "decision"]


@dataclass(frozen=True)
class StepNode:
    """One step (or decision): a function ``fn(ctx) -> dict | Goto``."""

    name: str
    fn: Callable[..., Any]
    kind: StepKind
    retry: Retry
    timeout: float | None
    compensate: str | None
    queue: str | None
    returns: str | None
    #: inside a foreach body, steps take ``(ctx, item)``
    takes_item: bool = False


@dataclass(frozen=True)
class Case:
    """One clause of a branch; ``values`` is empty for the default clause."""

    values: tuple[Any, ...]
    body: tuple[Node, ...]


@dataclass(frozen=True)
class BranchNode:
    """Runs the first case whose values contain ``on(ctx)``, else the default."""

    name: str
    on: Callable[[dict[str, Any]], Any]
    cases: tuple[Case, ...]
    default: Case | None


@dataclass(frozen=True)
class CompensationNode:
    """A compensation handler, run in reverse order when a later step fails."""

    name: str
    fn: Callable[..., Any]
    retry: Retry
    timeout: float | None


@dataclass(frozen=True)
class ParallelNode:
    """Runs each of ``branches`` (a step or a block) concurrently on a copy of the context."""

    name: str
    branches: tuple[Node, ...]
    on_error: str
    into: Callable[[dict[str, Any], dict[str, Any]], Any] | None


@dataclass(frozen=True)
class ForEachNode:
    """Runs ``body`` once per item of ``items(ctx)``; at most ``concurrency`` at once."""

    name: str
    items: Callable[[dict[str, Any]], Any]
    concurrency: int
    body: tuple[Node, ...]


@dataclass(frozen=True)
class LoopNode:
    """Repeats ``body`` while ``condition(ctx)`` holds, at most ``max_iterations`` times."""

    name: str
    condition: Callable[[dict[str, Any]], Any]
    max_iterations: int
    body: tuple[Node, ...]


Node = Union[StepNode, BranchNode, ParallelNode, ForEachNode, LoopNode]  # evaluated at runtime: no ``|`` on 3.9


def walk(body: tuple[Node, ...]) -> list[Node]:
    """Every node of a body, depth first, in definition order."""
    out: list[Node] = []
    for node in body:
        out.append(node)
        if isinstance(node, BranchNode):
            for case in node.cases + ((node.default,) if node.default else ()):
                out.extend(walk(case.body))
        elif isinstance(node, ParallelNode):
            out.extend(walk(node.branches))
        elif isinstance(node, (ForEachNode, LoopNode)):
            out.extend(walk(node.body))
    return out
