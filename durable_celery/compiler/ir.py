"""The compiled form of a workflow: an immutable state machine, the only thing the runtime reads."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from durable_celery.dsl.nodes import CompensationNode, StepNode

StateKind = Literal["step", "decision", "branch", "parallel", "foreach", "loop"]

#: The terminal state: reaching it completes the execution.
END = "$end"
#: Where the body of a parallel branch or a foreach iteration ends: its child execution completes.
JOIN = "$join"
#: Kinds that only route (evaluated inline, never run as a task of their own).
ROUTING = frozenset({"branch", "loop"})
#: Kinds that fan out into child executions.
FAN_OUT = frozenset({"parallel", "foreach"})


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
    #: what ``shape`` hashes (JSON-able): stored with the machine's description, so a later
    #: deploy can say how a state changed (``durable plan``)
    spec: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    #: the parallel branch or foreach body this state belongs to ("" at top level)
    region: str = ""
    step: StepNode | None = None
    on: Callable[[dict[str, Any]], Any] | None = None
    cases: tuple[tuple[tuple[Any, ...], str], ...] = ()
    default: str | None = None
    #: parallel: (result key, entry state) per branch; on_error; into
    branches: tuple[tuple[str, str], ...] = ()
    on_error: str = "fail_fast"
    into: Callable[[dict[str, Any], dict[str, Any]], Any] | None = None
    #: foreach: items, concurrency and the body's entry; loop: condition, limit and body entry
    items: Callable[[dict[str, Any]], Any] | None = None
    concurrency: int = 1
    body: str | None = None
    condition: Callable[[dict[str, Any]], Any] | None = None
    max_iterations: int = 0

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
    #: seconds after it is due by which an execution's first step must have begun (else it is
    #: cancelled): the default of each start. Not part of the version: it never changes a
    #: running execution's path
    start_deadline: float | None = None
    #: the definition's ``Workflow(version=...)`` label; not part of the ``version`` hash
    label: int | str | None = None

    def state(self, state_id: str) -> State | None:
        return self.states.get(state_id)

    @property
    def terminal_states(self) -> frozenset[str]:
        return frozenset({END, JOIN})

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
                    "branches": [list(b) for b in s.branches],
                    "body": s.body,
                    "shape": s.shape,
                }
                for s in self.states.values()
            ],
        }

    def states_spec(self) -> dict[str, dict[str, Any]]:
        """Each state's kind, successor, shape and what its shape hashes (its options): what
        ``durable plan`` compares a later deploy with (stored in ``workflow_versions``)."""
        return {s.id: {"kind": s.kind, "next": s.next, "shape": s.shape, "spec": dict(s.spec)}
                for s in self.states.values()}
