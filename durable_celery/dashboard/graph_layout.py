"""The layout of a workflow ``Graph`` for the execution page (drawn by ``graph_svg``): where
each node goes and where each edge passes. Pure: no I/O, no randomness, the same graph always
gets the same picture.

It is layered, top to bottom (a small Sugiyama): edges that close a cycle (a loop's repeat, any
jump back) are found by a depth-first walk from the start and laid out reversed, so the layers
stay acyclic and finite; each node goes one layer below its deepest predecessor; an edge that
spans layers passes through invisible waypoints; a few barycenter sweeps order each layer to
cut crossings; nodes then move towards the mean of their neighbours without overlapping. The
reversed edges are drawn upwards, beside the edges going down.
"""

from __future__ import annotations

from dataclasses import dataclass

from durable_celery.graph import Graph, GraphEdge, GraphNode

NODE_HEIGHT = 34.0
ROUND = 24.0  # the start and end circles
LAYER_GAP = 56.0
NODE_GAP = 28.0
MARGIN = 20.0
CHAR_WIDTH = 7.0
MAX_LABEL = 30
SELF_LOOP = 16.0  # how far an edge from a node to itself reaches out to its right
SWEEPS = 4
SPREADS = 6
#: kinds drawn as a hexagon (choices), a trapezium (fan out) or an inverted one (fan in)
CHOICES = frozenset({"decision", "branch", "loop"})
FAN_OUT = frozenset({"parallel", "foreach"})
ROUND_KINDS = frozenset({"start", "end"})

Point = tuple[float, float]


@dataclass(frozen=True)
class Box:
    """Where a node is drawn: its centre, size and layer (0 at the top)."""

    x: float
    y: float
    width: float
    height: float
    layer: int


@dataclass(frozen=True)
class Route:
    """The points an edge passes through, source first; ``back`` for an edge drawn upwards."""

    edge: GraphEdge
    points: tuple[Point, ...]
    back: bool


@dataclass(frozen=True)
class Layout:
    """A graph laid out: a box per node id, a route per edge (in the graph's order), the size."""

    boxes: dict[str, Box]
    routes: list[Route]
    width: float
    height: float


def layout(graph: Graph) -> Layout:
    """Positions for every node of ``graph`` and a route for every edge between known nodes.

    An edge that closes a cycle is laid out reversed (so that the layers stay acyclic) and
    drawn upwards, from the top of its source to the bottom of its target, beside the edge
    that goes down between them."""
    ids = [node.id for node in graph.nodes]
    known = set(ids)
    edges = [edge for edge in graph.edges if edge.source in known and edge.target in known]
    roots = [node.id for node in graph.nodes if node.kind == "start"] + ids
    back, discovered = _back_edges(roots, edges)
    flows = [(i, (e.target, e.source) if i in back else (e.source, e.target))
             for i, e in enumerate(edges) if e.source != e.target]
    pairs = [pair for _, pair in flows]
    layer_of = _layers(discovered, pairs, [node.id for node in graph.nodes if node.kind == "end"])
    chains, layer_of = _chains(pairs, layer_of)
    layers = _order(discovered, chains, layer_of)
    widths = {node.id: _width(node) for node in graph.nodes}
    xs = _spread_layers(layers, chains, widths)
    left = min((xs[n] - widths.get(n, 0.0) / 2 for layer in layers for n in layer), default=0.0)
    xs = {node: x + MARGIN - left for node, x in xs.items()}
    boxes = {node.id: Box(xs[node.id], _row(layer_of[node.id]), widths[node.id],
                          ROUND if node.kind in ROUND_KINDS else NODE_HEIGHT, layer_of[node.id])
             for node in graph.nodes}
    routes = {i: _route(edges[i], chain, i in back, boxes, xs, layer_of) for (i, _), chain in zip(flows, chains)}
    routes.update((i, _self_loop(e, boxes[e.source])) for i, e in enumerate(edges) if e.source == e.target)
    ordered = [routes[i] for i in range(len(edges))]
    right = max([box.x + box.width / 2 for box in boxes.values()]
                + [x for route in ordered for x, _ in route.points]
                + [label_at(route)[0] + len(shorten(route.edge.label)) * CHAR_WIDTH / 2
                   for route in ordered if route.edge.label], default=0.0)
    bottom = max((box.y + box.height / 2 for box in boxes.values()), default=0.0)
    return Layout(boxes, ordered, right + MARGIN, bottom + MARGIN)


def _back_edges(roots: list[str], edges: list[GraphEdge]) -> tuple[set[int], list[str]]:
    """The indices of the edges that close a cycle in a depth-first walk from ``roots`` (in
    order), and the nodes in the order the walk found them. Without those edges, no cycle."""
    out: dict[str, list[int]] = {}
    for index, edge in enumerate(edges):
        out.setdefault(edge.source, []).append(index)
    on_stack: set[str] = set()
    seen: set[str] = set()
    back: set[int] = set()
    discovered: list[str] = []
    for root in roots:
        if root in seen:
            continue
        seen.add(root)
        on_stack.add(root)
        discovered.append(root)
        stack = [(root, iter(out.get(root, [])))]
        while stack:
            node, pending = stack[-1]
            for index in pending:
                target = edges[index].target
                if target in on_stack:
                    back.add(index)
                elif target not in seen:
                    seen.add(target)
                    on_stack.add(target)
                    discovered.append(target)
                    stack.append((target, iter(out.get(target, []))))
                    break
            else:
                on_stack.discard(node)
                stack.pop()
    return back, discovered


def _layers(order: list[str], pairs: list[tuple[str, str]], ends: list[str]) -> dict[str, int]:
    """Longest path from the sources over the acyclic (source, target) ``pairs``; the end at
    the bottom."""
    incoming = dict.fromkeys(order, 0)
    out: dict[str, list[str]] = {}
    for source, target in pairs:
        incoming[target] += 1
        out.setdefault(source, []).append(target)
    layer_of = dict.fromkeys(order, 0)
    ready = [node for node in order if incoming[node] == 0]
    while ready:
        node = ready.pop(0)
        for target in out.get(node, []):
            layer_of[target] = max(layer_of[target], layer_of[node] + 1)
            incoming[target] -= 1
            if incoming[target] == 0:
                ready.append(target)
    deepest = max(layer_of.values(), default=0)
    for end in ends:
        if end not in out:
            layer_of[end] = deepest
    return layer_of


def _chains(pairs: list[tuple[str, str]], layer_of: dict[str, int]) -> tuple[list[list[str]], dict[str, int]]:
    """Each (upper, lower) pair as the list of nodes its edge passes, top down: the upper node,
    one waypoint per layer it crosses (ids that start with NUL, which no node id has), the lower."""
    layer_of = dict(layer_of)
    chains = []
    for index, (upper, lower) in enumerate(pairs):
        start, stop = layer_of[upper], layer_of[lower]
        waypoints = [f"\0{index}:{layer}" for layer in range(start + 1, stop)]
        layer_of.update({point: start + 1 + k for k, point in enumerate(waypoints)})
        chains.append([upper, *waypoints, lower])
    return chains, layer_of


def _order(discovered: list[str], chains: list[list[str]], layer_of: dict[str, int]) -> list[list[str]]:
    """The nodes of each layer, left to right: in the order found, then barycenter sweeps that
    keep the ordering with the fewest crossings."""
    rank = {node: (i, 0) for i, node in enumerate(discovered)}
    for chain in chains:
        for k, point in enumerate(chain[1:-1], start=1):
            rank[point] = (rank[chain[0]][0], k)
    layers: list[list[str]] = [[] for _ in range(max(layer_of.values(), default=0) + 1)]
    for node in sorted(layer_of, key=lambda n: rank[n]):
        layers[layer_of[node]].append(node)
    above, below = _neighbours(chains)
    best, fewest = [list(layer) for layer in layers], _crossings(layers, below)
    for _ in range(SWEEPS):
        for i in range(1, len(layers)):
            layers[i] = _by_barycenter(layers[i], layers[i - 1], above)
        for i in range(len(layers) - 2, -1, -1):
            layers[i] = _by_barycenter(layers[i], layers[i + 1], below)
        crossings = _crossings(layers, below)
        if crossings < fewest:
            best, fewest = [list(layer) for layer in layers], crossings
    return best


def _neighbours(chains: list[list[str]]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    above: dict[str, list[str]] = {}
    below: dict[str, list[str]] = {}
    for chain in chains:
        for upper, lower in zip(chain, chain[1:]):
            below.setdefault(upper, []).append(lower)
            above.setdefault(lower, []).append(upper)
    return above, below


def _by_barycenter(layer: list[str], fixed: list[str], neighbours: dict[str, list[str]]) -> list[str]:
    where = {node: i for i, node in enumerate(fixed)}

    def key(item: tuple[int, str]) -> tuple[float, int]:
        index, node = item
        places = [where[n] for n in neighbours.get(node, []) if n in where]
        return (sum(places) / len(places) if places else float(index), index)

    return [node for _, node in sorted(enumerate(layer), key=key)]


def _crossings(layers: list[list[str]], below: dict[str, list[str]]) -> int:
    total = 0
    for upper, lower in zip(layers, layers[1:]):
        where = {node: i for i, node in enumerate(lower)}
        pairs = [(i, where[n]) for i, node in enumerate(upper) for n in below.get(node, []) if n in where]
        total += sum(1 for k, (a, b) in enumerate(pairs) for c, d in pairs[k + 1:] if (a - c) * (b - d) < 0)
    return total


def _width(node: GraphNode) -> float:
    if node.kind in ROUND_KINDS:
        return ROUND
    extra = NODE_HEIGHT if node.kind in CHOICES else 16.0 if node.kind in FAN_OUT or node.kind == "join" else 0.0
    return max(64.0, len(shorten(node.label)) * CHAR_WIDTH + 24.0 + extra)


def _spread_layers(layers: list[list[str]], chains: list[list[str]], widths: dict[str, float]) -> dict[str, float]:
    """Horizontal centres: each layer packed and centred, then moved towards the mean of its
    neighbours above (down sweeps) and below (up sweeps), never closer than the gap."""
    above, below = _neighbours(chains)
    xs: dict[str, float] = {}
    for layer in layers:
        packed = _packed(layer, widths)
        xs.update(zip(layer, packed))
    for _ in range(SPREADS):
        for i in range(1, len(layers)):
            _pull(layers[i], above, xs, widths)
        for i in range(len(layers) - 2, -1, -1):
            _pull(layers[i], below, xs, widths)
    return xs


def _packed(layer: list[str], widths: dict[str, float]) -> list[float]:
    centres, left = [], 0.0
    for node in layer:
        width = widths.get(node, 0.0)
        centres.append(left + width / 2)
        left += width + _gap(node)
    shift = (left - _gap(layer[-1]) if layer else 0.0) / 2
    return [x - shift for x in centres]


def _gap(node: str) -> float:
    return NODE_GAP / 2 if node.startswith("\0") else NODE_GAP


def _pull(layer: list[str], neighbours: dict[str, list[str]], xs: dict[str, float], widths: dict[str, float]) -> None:
    wanted = []
    for node in layer:
        places = [xs[n] for n in neighbours.get(node, [])]
        wanted.append(sum(places) / len(places) if places else xs[node])
    seps = [(widths.get(a, 0.0) + widths.get(b, 0.0)) / 2 + max(_gap(a), _gap(b)) for a, b in zip(layer, layer[1:])]
    # pushed right from the left, pushed left from the right: both keep the gaps, so their mean does
    rightwards, leftwards = list(wanted), list(wanted)
    for i in range(1, len(layer)):
        rightwards[i] = max(wanted[i], rightwards[i - 1] + seps[i - 1])
    for i in range(len(layer) - 2, -1, -1):
        leftwards[i] = min(wanted[i], leftwards[i + 1] - seps[i])
    xs.update((node, (a + b) / 2) for node, a, b in zip(layer, rightwards, leftwards))


def _route(edge: GraphEdge, chain: list[str], up: bool, boxes: dict[str, Box], xs: dict[str, float],
           layer_of: dict[str, int]) -> Route:
    """Down: from the bottom of the source, through the waypoints, to the top of the target.
    Up (an edge laid out reversed): from the top of the source to the bottom of the target,
    a little right of their centres, clear of the edge going down between them."""
    upper, lower = boxes[chain[0]], boxes[chain[-1]]
    waypoints = [(xs[p], _row(layer_of[p])) for p in chain[1:-1]]
    if not up:
        return Route(edge, ((upper.x, upper.y + upper.height / 2), *waypoints, (lower.x, lower.y - lower.height / 2)),
                     False)
    return Route(edge, ((lower.x + _port(lower), lower.y - lower.height / 2), *reversed(waypoints),
                        (upper.x + _port(upper), upper.y + upper.height / 2)), True)


def _port(box: Box) -> float:
    return min(box.width / 4, 20.0) if box.width > ROUND else 0.0


def _self_loop(edge: GraphEdge, box: Box) -> Route:
    right = box.x + box.width / 2
    return Route(edge, ((right, box.y + 6), (right + SELF_LOOP, box.y + 6), (right + SELF_LOOP, box.y - 6),
                        (right, box.y - 6)), True)


def label_at(route: Route) -> Point:
    """Where an edge's label goes: half-way along its first segment (where a branch's cases
    have fanned out); beside an edge from a node to itself."""
    (ax, ay), (bx, by) = route.points[0], route.points[1]
    if route.edge.source == route.edge.target:
        return bx + 4, (ay + by) / 2
    return (ax + bx) / 2, (ay + by) / 2


def _row(layer: int) -> float:
    return MARGIN + layer * (NODE_HEIGHT + LAYER_GAP) + NODE_HEIGHT / 2


def shorten(text: str) -> str:
    """A label as drawn: at most ``MAX_LABEL`` characters."""
    return text if len(text) <= MAX_LABEL else text[:MAX_LABEL - 1] + "…"
