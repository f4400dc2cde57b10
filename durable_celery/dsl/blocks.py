"""Block builders (``branch``/``case``/``default``): context managers that collect the steps
defined inside them into a nested node tree."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from durable_celery.dsl.nodes import BranchNode, Case, Node
from durable_celery.errors import DefinitionError


class Body:
    """A mutable list of nodes being defined: the workflow's top level or one clause."""

    def __init__(self, owner: object, takes_item: bool = False) -> None:
        self.owner = owner
        self.nodes: list[Node] = []
        #: steps defined in this body (a foreach body, at any depth) take ``(ctx, item)``
        self.takes_item = takes_item


class BodyStack:
    """The bodies being defined, the workflow's top level first: a block pushes its body while
    its ``with`` is open, and steps defined meanwhile land in the innermost one."""

    def __init__(self, workflow: str, root: Body) -> None:
        self._workflow = workflow
        self._stack = [root]

    @property
    def current(self) -> Body:
        return self._stack[-1]

    @property
    def depth(self) -> int:
        return len(self._stack)

    @property
    def takes_item(self) -> bool:
        """Steps defined here take ``(ctx, item)`` (inside a foreach body, at any depth)."""
        return self._stack[-1].takes_item

    @contextmanager
    def opened(self, body: Body) -> Iterator[Body]:
        """Make ``body`` the innermost body for the duration of the block."""
        self._stack.append(body)
        try:
            yield body
        finally:
            if self._stack[-1] is not body:
                raise DefinitionError(self._workflow, "blocks closed out of order")
            self._stack.pop()


class BranchBlock:
    """The object ``with wf.branch(on=...) as b`` yields; ``b.case(...)`` and ``b.default()``
    open its clauses."""

    def __init__(self, workflow: str, bodies: BodyStack, name: str | None, on: Callable[[dict[str, Any]], Any]) -> None:
        self._workflow = workflow
        self._bodies = bodies
        self._name = name
        self._on = on
        self._cases: list[Case] = []
        self._default: Case | None = None
        self._open = True
        self._in_clause = False
        # Steps written directly under `with wf.branch(...)`, outside any case, land here.
        self.body = Body(self, bodies.takes_item)

    @contextmanager
    def case(self, *values: Any) -> Iterator[None]:
        """A clause that runs when ``on(ctx)`` equals any of ``values``."""
        self._check_clause("case")
        if not values:
            raise DefinitionError(self._workflow, "case() needs at least one value (use default())")
        seen = [v for case in self._cases for v in case.values]
        for value in values:
            if any(type(value) is type(s) and value == s for s in seen):
                raise DefinitionError(self._workflow, f"branch has two cases for value {value!r}")
        with self._clause() as body:
            yield
        self._cases.append(Case(tuple(values), tuple(body.nodes)))

    @contextmanager
    def default(self) -> Iterator[None]:
        """The clause that runs when no case matches."""
        self._check_clause("default")
        if self._default is not None:
            raise DefinitionError(self._workflow, "branch has two default() clauses")
        with self._clause() as body:
            yield
        self._default = Case((), tuple(body.nodes))

    def _check_clause(self, what: str) -> None:
        if not self._open:
            raise DefinitionError(self._workflow, f"{what}() used outside its `with wf.branch(...)` block")
        if self._in_clause:
            raise DefinitionError(self._workflow, f"{what}() opened inside another clause of the same branch")

    @contextmanager
    def _clause(self) -> Iterator[Body]:
        body = Body(self, self.body.takes_item)
        self._in_clause = True
        try:
            with self._bodies.opened(body):
                yield body
        finally:
            self._in_clause = False

    def build(self) -> BranchNode:
        self._open = False
        if self.body.nodes:
            names = ", ".join(getattr(n, "name", "?") for n in self.body.nodes)
            raise DefinitionError(
                self._workflow, f"steps defined in a branch outside any case()/default(): {names}"
            )
        if not self._cases and self._default is None:
            raise DefinitionError(self._workflow, "branch has no case() and no default()")
        first = next((c.body[0] for c in self._cases + ([self._default] if self._default else []) if c.body), None)
        name = self._name or f"branch:{getattr(first, 'name', len(self._cases))}"
        return BranchNode(name, self._on, tuple(self._cases), self._default)
