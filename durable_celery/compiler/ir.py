"""The compiled form of a workflow: an immutable state machine, the only thing the runtime reads."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from durable_celery.dsl.nodes import CompensationNode, StepNode

StateKind = Literal["step", "decision", "branch"]

#: The terminal state: reaching it completes the execution.
END = "$end"


@dataclass(frozen=True)
class State:
    """One node of the machine.

    ``next`` is the successor in definition order (``END`` at the end). A branch has no step; its
    ``cases`` map match values to target states and ``default`` is the fallback target (``None``: no
    default, so no match fails). ``shape`` hashes everything that makes this node behave as it does,
    except the body of its function.
    """

    id: str
    kind: StateKind
    next: str
    shape: str
    step: StepNode | None = None
    on: Callable[[dict[str, Any]], Any] | None = None
    cases: tuple[tuple[tuple[Any, ...], str], ...] = ()
    default: str | None = None

    @property
    def queue(self) -> str | None:
        return self.step.queue if self.step else None


@dataclass(frozen=True)
class StateMachine:
    """A compiled workflow: its states by id, the entry state, and a version hash over all shapes."""

    workflow: str
    entry: str
    states: Mapping[str, State]
    version: str
    timeout: float | None
    queue: str | None
    compensations: Mapping[str, CompensationNode] = field(default_factory=lambda: MappingProxyType({}))

    def state(self, state_id: str) -> State | None:
        return self.states.get(state_id)

    @property
    def terminal_states(self) -> frozenset[str]:
        return frozenset({END})

    def describe(self) -> dict[str, Any]:
        """A JSON-able view of the machine (nodes, transitions), for graphs and debugging."""
        return {
            "workflow": self.workflow,
            "entry": self.entry,
            "version": self.version,
            "states": [
                {
                    "id": s.id,
                    "kind": s.kind,
                    "next": s.next,
                    "cases": [[list(v), t] for v, t in s.cases],
                    "default": s.default,
                    "shape": s.shape,
                }
                for s in self.states.values()
            ],
        }
