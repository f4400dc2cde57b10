"""A workflow ``Graph`` as inline SVG for the execution page: pure (Graph in, SVG text out),
laid out on the server by ``graph_layout``, so the page needs no script and no library to draw it.

Every label and id is escaped with ``html.escape``; the picture has no inline style, only
classes the stylesheet colours: ``node node-<kind>``, ``state-<state>`` for a node with an
execution state, ``reached`` for a node on the path taken, and ``edge`` (``taken``, ``back``)
for edges. Nodes carry ``data-node``, ``data-state`` and ``data-attempts``; edges
``data-source`` and ``data-target``.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable

from durable_celery.dashboard.graph_layout import (
    CHOICES,
    FAN_OUT,
    ROUND_KINDS,
    Box,
    Point,
    Route,
    label_at,
    layout,
    shorten,
)
from durable_celery.graph import Graph, GraphNode

#: kinds that run no step, so have no state of their own: passed when what follows them is
STRUCTURAL = frozenset({"start", "branch", "parallel", "foreach", "loop", "join"})


def render_svg(graph: Graph, *, completed: bool = False, prefix: str = "graph") -> str:
    """The SVG of ``graph``; ``completed``: the execution reached the end (the end node is then
    on the path taken). ``prefix`` names the arrowhead markers: unique per page."""
    shape = layout(graph)
    reached = path_taken(graph, completed=completed)
    marker = _token(prefix)
    parts = [f'<svg class="graph" xmlns="http://www.w3.org/2000/svg" role="img" '
             f'width="{shape.width:.0f}" height="{shape.height:.0f}" viewBox="0 0 {shape.width:.0f} {shape.height:.0f}" '
             f'aria-label="{_esc("workflow graph of " + graph.workflow)}">',
             "<defs>",
             *(f'<marker id="{marker}-{kind}" class="arrow arrow-{kind}" viewBox="0 0 10 10" refX="10" refY="5" '
               'markerUnits="userSpaceOnUse" markerWidth="9" markerHeight="9" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker>'
               for kind in ("plain", "taken")),
             "</defs>"]
    parts += (_edge_svg(route, route.edge.source in reached and route.edge.target in reached, marker)
              for route in shape.routes)
    parts += (_node_svg(node, shape.boxes[node.id], node.id in reached) for node in graph.nodes)
    parts.append("</svg>")
    return "\n".join(parts)


def path_taken(graph: Graph, *, completed: bool = False) -> set[str]:
    """The ids of the nodes the execution went through: those with a state, the structural
    nodes (start, branch, fan-out, loop, join) before one of them, a join whose reached
    predecessors all completed, and the end when ``completed``. (A step that a later one
    follows but that has no state was skipped: a branch not taken, a goto over it.)"""
    states = {node.id: node.state for node in graph.nodes}
    reached = {node.id for node in graph.nodes if node.state}
    reached |= {node.id for node in graph.nodes if node.kind == "end" and completed}
    before: dict[str, list[str]] = {}
    for edge in graph.edges:
        before.setdefault(edge.target, []).append(edge.source)
    changed = True
    while changed:
        changed = False
        for node in graph.nodes:
            if node.id in reached or node.kind not in STRUCTURAL:
                continue
            if any(e.source == node.id and e.target in reached for e in graph.edges) or (
                    node.kind == "join" and _all_done(before.get(node.id, []), reached, states)):
                reached.add(node.id)
                changed = True
    return reached


def _all_done(sources: list[str], reached: set[str], states: dict[str, str | None]) -> bool:
    arrived = [s for s in sources if s in reached]
    return bool(arrived) and all(states.get(s) in (None, "completed") for s in arrived)


# --- drawing ------------------------------------------------------------------------------


def _node_svg(node: GraphNode, box: Box, reached: bool) -> str:
    classes = ["node", f"node-{_token(node.kind)}"]
    if node.state:
        classes.append(f"state-{_token(node.state)}")
    if reached:
        classes.append("reached")
    data = f' data-node="{_esc(node.id)}"'
    if node.state:
        data += f' data-state="{_esc(node.state)}"'
    if node.attempts:
        data += f' data-attempts="{node.attempts}"'
    about = node.label + (f": {node.state}" if node.state else "") + (
        f", {node.attempts} attempts" if node.attempts > 1 else "")
    parts = [f'<g class="{" ".join(classes)}"{data}>', f"<title>{_esc(about)}</title>", _shape(node.kind, box)]
    if node.kind not in ROUND_KINDS:
        parts.append(f'<text class="node-label" x="{box.x:.1f}" y="{box.y:.1f}" text-anchor="middle" '
                     f'dominant-baseline="central">{_esc(shorten(node.label))}</text>')
    if node.attempts > 1:
        parts.append(f'<text class="node-attempts" x="{box.x + box.width / 2 - 4:.1f}" y="{box.y - box.height / 2 - 4:.1f}" '
                     f'text-anchor="end">×{node.attempts}</text>')
    parts.append("</g>")
    return "".join(parts)


def _shape(kind: str, box: Box) -> str:
    x, y, half_w, half_h = box.x, box.y, box.width / 2, box.height / 2
    if kind in ROUND_KINDS:
        ring = f'<circle class="node-ring" cx="{x:.1f}" cy="{y:.1f}" r="{half_h - 4:.1f}"/>' if kind == "end" else ""
        return f'<circle class="node-shape" cx="{x:.1f}" cy="{y:.1f}" r="{half_h:.1f}"/>{ring}'
    if kind in CHOICES:
        points: Iterable[Point] = ((x - half_w, y), (x - half_w + half_h, y - half_h), (x + half_w - half_h, y - half_h),
                                   (x + half_w, y), (x + half_w - half_h, y + half_h), (x - half_w + half_h, y + half_h))
    elif kind in FAN_OUT:
        points = ((x - half_w + 8, y - half_h), (x + half_w - 8, y - half_h), (x + half_w, y + half_h),
                  (x - half_w, y + half_h))
    elif kind == "join":
        points = ((x - half_w, y - half_h), (x + half_w, y - half_h), (x + half_w - 8, y + half_h),
                  (x - half_w + 8, y + half_h))
    else:
        return (f'<rect class="node-shape" x="{x - half_w:.1f}" y="{y - half_h:.1f}" width="{box.width:.1f}" '
                f'height="{box.height:.1f}" rx="6"/>')
    return f'<polygon class="node-shape" points="{" ".join(f"{px:.1f},{py:.1f}" for px, py in points)}"/>'


def _edge_svg(route: Route, taken: bool, marker: str) -> str:
    edge = route.edge
    classes = "edge" + (" taken" if taken else "") + (" back" if route.back else "")
    points = route.points
    path = f"M{points[0][0]:.1f},{points[0][1]:.1f}"
    if edge.source == edge.target:
        path += "".join(f" L{px:.1f},{py:.1f}" for px, py in points[1:])
    for (ax, ay), (bx, by) in zip(points, points[1:]) if edge.source != edge.target else ():
        middle = (ay + by) / 2
        path += f" C{ax:.1f},{middle:.1f} {bx:.1f},{middle:.1f} {bx:.1f},{by:.1f}"
    parts = [f'<g class="{classes}" data-source="{_esc(edge.source)}" data-target="{_esc(edge.target)}">',
             f'<path d="{path}" marker-end="url(#{marker}-{"taken" if taken else "plain"})"/>']
    if edge.label:
        lx, ly = label_at(route)
        anchor = "start" if edge.source == edge.target else "middle"
        parts.append(f'<text class="edge-label" x="{lx:.1f}" y="{ly:.1f}" text-anchor="{anchor}" '
                     f'dominant-baseline="central">{_esc(shorten(edge.label))}</text>')
    parts.append("</g>")
    return "".join(parts)

def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _token(text: str) -> str:
    """``text`` as a safe class-name part."""
    return re.sub(r"[^a-z0-9_-]", "-", text.lower())
