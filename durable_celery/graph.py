"""``Durable.graph``: a workflow's compiled state machine as nodes and edges, rendered as DOT,
Mermaid or a dict; with an execution, each node carries that execution's state."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from durable_celery.compiler.ir import END, JOIN, StateMachine
from durable_celery.models import Execution

START = "$start"


@dataclass(frozen=True)
class GraphNode:
    id: str
    kind: str  # start | end | step | decision | branch | parallel | foreach | loop | join
    label: str
    #: with an execution: completed | failed | running | waiting | compensated | None (not reached)
    state: str | None = None
    attempts: int = 0


@dataclass(frozen=True)
class GraphEdge:
    source: str
    target: str
    label: str = ""


@dataclass(frozen=True)
class Graph:
    workflow: str
    nodes: list[GraphNode] = field(default_factory=list)
    edges: list[GraphEdge] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"workflow": self.workflow, "nodes": [asdict(n) for n in self.nodes],
                "edges": [asdict(e) for e in self.edges]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_dot(self) -> str:
        shapes = {"start": "circle", "end": "doublecircle", "branch": "diamond", "decision": "diamond",
                  "loop": "diamond", "parallel": "trapezium", "foreach": "trapezium", "join": "invtrapezium"}
        colors = {"completed": "palegreen", "failed": "salmon", "running": "lightblue", "waiting": "khaki"}
        lines = [f"digraph {_quote(self.workflow)} {{", "  rankdir=TB;"]
        for node in self.nodes:
            attrs = [f"label={_quote(node.label)}", f"shape={shapes.get(node.kind, 'box')}"]
            if node.state in colors:
                attrs.append(f'style=filled fillcolor="{colors[node.state]}"')
            lines.append(f"  {_quote(node.id)} [{' '.join(attrs)}];")
        for edge in self.edges:
            label = f" [label={_quote(edge.label)}]" if edge.label else ""
            lines.append(f"  {_quote(edge.source)} -> {_quote(edge.target)}{label};")
        lines.append("}")
        return "\n".join(lines)

    def to_mermaid(self) -> str:
        ids = {node.id: f"n{i}" for i, node in enumerate(self.nodes)}
        brackets = {"branch": ("{", "}"), "decision": ("{", "}"), "loop": ("{", "}"), "start": ("((", "))"),
                    "end": ("((", "))"), "parallel": ("[/", "\\]"), "foreach": ("[/", "\\]"), "join": ("[\\", "/]")}
        lines = ["flowchart TD"]
        for node in self.nodes:
            left, right = brackets.get(node.kind, ("[", "]"))
            suffix = f" ({node.state})" if node.state else ""
            lines.append(f'  {ids[node.id]}{left}"{node.label}{suffix}"{right}')
        for edge in self.edges:
            arrow = f"-->|{edge.label}|" if edge.label else "-->"
            lines.append(f"  {ids[edge.source]} {arrow} {ids[edge.target]}")
        return "\n".join(lines)


def _quote(text: str) -> str:
    return json.dumps(text)


def build_graph(machine: StateMachine, execution: Execution | None = None) -> Graph:
    """Nodes for every state (plus start, end and one join per parallel/foreach block)."""
    states = _states_of(execution)
    nodes = [GraphNode(START, "start", "start"), GraphNode(END, "end", "end")]
    edges = [GraphEdge(START, machine.entry)]
    for state in machine.states.values():
        observed = states.get(state.id, (None, 0))
        nodes.append(GraphNode(state.id, state.kind, state.id, observed[0], observed[1]))
        # the end of a parallel branch or foreach body is its block's join node
        join_of_region = f"{state.region.split('/')[0]}.join"

        def edge(target: str, label: str = "", source: str = state.id, join: str = join_of_region) -> None:
            edges.append(GraphEdge(source, join if target == JOIN else target, label))

        if state.kind in ("parallel", "foreach"):
            join = f"{state.id}.join"
            nodes.append(GraphNode(join, "join", f"join {state.id}"))
            edge(state.next, source=join)
            for key, entry in state.branches:
                edge(entry, key)
            if state.body:
                edge(state.body, "each item")
        elif state.kind == "branch":
            for values, target in state.cases:
                edge(target, " | ".join(repr(v) for v in values))
            if state.default is not None:
                edge(state.default, "default")
        elif state.kind == "loop":
            assert state.body is not None
            edge(state.body, "repeat")
            edge(state.next, "done")
        else:
            edge(state.next)
    return Graph(machine.workflow, nodes, edges)


def _states_of(execution: Execution | None) -> dict[str, tuple[str, int]]:
    """Per step: the state of its latest attempt and how many attempts it had."""
    if execution is None:
        return {}
    seen: dict[str, tuple[str, int]] = {}
    for step in execution.steps:
        if step.is_compensation:
            continue
        _, count = seen.get(step.step_name, ("", 0))
        seen[step.step_name] = (step.status, count + 1)
    return seen
