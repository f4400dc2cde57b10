"""The execution page's graph: a layered top-down layout of a ``Graph`` (branches side by side,
fan-outs and joins, loops drawn back up) and its SVG, escaped and styled by classes only."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from itertools import combinations

import pytest

from durable_celery.compiler import compile_workflow
from durable_celery.dashboard.graph_layout import Layout, layout
from durable_celery.dashboard.graph_svg import path_taken, render_svg
from durable_celery.graph import Graph, GraphEdge, GraphNode, build_graph
from tests.proj.workflows import nested, pipeline, poller, routing

SVG = "{http://www.w3.org/2000/svg}"


def _graph(nodes: list[tuple[str, str]], edges: list[tuple[str, str] | tuple[str, str, str]],
           states: dict[str, str] | None = None) -> Graph:
    states = states or {}
    return Graph("hand_made", [GraphNode(i, kind, i, states.get(i), 1 if i in states else 0) for i, kind in nodes],
                 [GraphEdge(*edge) for edge in edges])


def _overlaps(shape: Layout) -> list[tuple[str, str]]:
    """Pairs of nodes drawn over each other."""
    return [(a, b) for (a, p), (b, q) in combinations(shape.boxes.items(), 2)
            if p.layer == q.layer and abs(p.x - q.x) < (p.width + q.width) / 2]


def _with_state(graph: Graph, states: dict[str, str]) -> Graph:
    return replace(graph, nodes=[replace(n, state=states.get(n.id), attempts=1 if n.id in states else 0)
                                 for n in graph.nodes])


def test_a_pipeline_is_one_column_from_start_to_end() -> None:
    shape = layout(build_graph(compile_workflow(pipeline)))
    order = ["$start", "first", "second", "third", "$end"]
    assert [shape.boxes[n].layer for n in order] == [0, 1, 2, 3, 4]
    assert len({round(shape.boxes[n].x) for n in order}) == 1
    assert all(not route.back for route in shape.routes)


def test_the_cases_of_a_branch_sit_side_by_side_below_it_and_meet_again_below() -> None:
    shape = layout(build_graph(compile_workflow(routing)))
    branch, invoice, receipt, finish = (shape.boxes[n] for n in
                                        ("branch:handle_invoice", "handle_invoice", "handle_receipt", "finish"))
    assert invoice.layer == receipt.layer == branch.layer + 1
    assert finish.layer == invoice.layer + 1 and shape.boxes["$end"].layer == finish.layer + 1
    assert invoice.x != receipt.x and min(invoice.x, receipt.x) < branch.x < max(invoice.x, receipt.x)
    assert _overlaps(shape) == []


def test_parallel_branches_fan_out_side_by_side_and_join_below_all_of_them() -> None:
    shape = layout(build_graph(compile_workflow(nested)))
    fan, count, pick = (shape.boxes[n] for n in ("parallel:count_a", "count_a", "pick_mode"))
    assert count.layer == pick.layer == fan.layer + 1
    join = shape.boxes["parallel:count_a.join"]
    assert join.layer > max(shape.boxes[n].layer for n in ("count_a", "quick"))
    assert shape.boxes["$end"].layer == max(box.layer for box in shape.boxes.values())
    assert _overlaps(shape) == []


def test_a_loop_is_laid_out_downwards_and_its_repeat_edge_drawn_back_up() -> None:
    shape = layout(build_graph(compile_workflow(poller)))
    assert shape.boxes["poll_once"].layer == shape.boxes["poll"].layer + 1
    [back] = [route for route in shape.routes if route.back]
    assert (back.edge.source, back.edge.target) == ("poll_once", "poll")
    assert back.points[-1][1] < back.points[0][1]  # it ends above where it starts


def test_cycles_of_any_length_and_self_loops_end_in_a_finite_layout() -> None:
    graph = _graph([("$start", "start"), ("a", "step"), ("b", "step"), ("c", "decision"), ("$end", "end")],
                   [("$start", "a"), ("a", "b"), ("b", "c"), ("c", "a", "again"), ("c", "c", "self"),
                    ("c", "$end", "done"), ("b", "a")])
    shape = layout(graph)
    assert [shape.boxes[n].layer for n in ("$start", "a", "b", "c", "$end")] == [0, 1, 2, 3, 4]
    assert {(r.edge.source, r.edge.target) for r in shape.routes if r.back} == {("c", "a"), ("c", "c"), ("b", "a")}
    assert len(shape.routes) == len(graph.edges)
    assert shape.width > 0 and shape.height > 0


def test_a_long_edge_passes_beside_the_nodes_it_skips() -> None:
    graph = _graph([("$start", "start"), ("check", "branch"), ("a", "step"), ("b", "step"), ("c", "step"),
                    ("$end", "end")],
                   [("$start", "check"), ("check", "a", "long"), ("a", "b"), ("b", "c"), ("c", "$end"),
                    ("check", "$end", "skip")])
    shape = layout(graph)
    skip = next(r for r in shape.routes if r.edge.label == "skip")
    assert len(skip.points) == 2 + 3  # a waypoint in each of the layers of a, b and c
    for (x, y), name in zip(skip.points[1:-1], ("a", "b", "c")):
        box = shape.boxes[name]
        assert y == box.y and abs(x - box.x) >= box.width / 2


def test_edges_to_unknown_nodes_are_left_out_and_an_empty_graph_draws() -> None:
    graph = _graph([("$start", "start"), ("a", "step")], [("$start", "a"), ("a", "$nowhere")])
    assert [(r.edge.source, r.edge.target) for r in layout(graph).routes] == [("$start", "a")]
    assert ET.fromstring(render_svg(Graph("empty"))).tag == f"{SVG}svg"


def test_labels_ids_and_kinds_are_escaped_and_the_svg_is_well_formed() -> None:
    hostile = '<script>f("x")</script>&\'q\''
    graph = Graph(f"wf {hostile}", [GraphNode("$start", "start", "start"),
                                    GraphNode(hostile, 'step" onload="x', hostile, "completed", 2)],
                  [GraphEdge("$start", hostile, hostile)])
    svg = render_svg(graph)
    assert "<script>" not in svg and 'onload="x' not in svg
    root = ET.fromstring(svg)
    node = next(g for g in root.iter(f"{SVG}g") if g.get("data-node") == hostile)
    assert node.get("class", "").split()[:2] == ["node", "node-step--onload--x"]
    assert node.findtext(f"{SVG}title", "").startswith(hostile)
    label = next(t for t in root.iter(f"{SVG}text") if t.get("class") == "edge-label")
    assert label.text == hostile
    assert root.get("aria-label") == f"workflow graph of wf {hostile}"
    assert "style=" not in svg


def test_a_long_label_is_shortened_and_kept_whole_in_the_tooltip() -> None:
    name = "a_step_with_a_name_much_longer_than_a_box_should_be"
    root = ET.fromstring(render_svg(_graph([("$start", "start"), (name, "step")], [("$start", name)])))
    node = next(g for g in root.iter(f"{SVG}g") if g.get("data-node") == name)
    assert node.findtext(f"{SVG}text", "").endswith("…") and len(node.findtext(f"{SVG}text", "")) == 30
    assert node.findtext(f"{SVG}title") == name


def test_nodes_and_edges_on_the_path_taken_carry_their_state_and_the_others_do_not() -> None:
    graph = _with_state(build_graph(compile_workflow(routing)),
                        {"triage": "completed", "handle_invoice": "completed", "finish": "running"})
    assert path_taken(graph) == {"$start", "triage", "branch:handle_invoice", "handle_invoice", "finish"}
    root = ET.fromstring(render_svg(graph))
    nodes = {g.get("data-node"): g for g in root.iter(f"{SVG}g") if g.get("data-node")}
    assert nodes["handle_invoice"].get("class") == "node node-step state-completed reached"
    assert nodes["finish"].get("data-state") == "running"
    assert nodes["handle_receipt"].get("class") == "node node-step"
    assert "reached" not in (nodes["$end"].get("class") or "")
    edges = {(g.get("data-source"), g.get("data-target")): g.get("class") for g in root.iter(f"{SVG}g")
             if g.get("data-source")}
    assert edges[("branch:handle_invoice", "handle_invoice")] == "edge taken"
    assert edges[("branch:handle_invoice", "handle_receipt")] == "edge"
    assert edges[("finish", "$end")] == "edge"


def test_the_end_is_reached_when_the_execution_completed() -> None:
    graph = _with_state(build_graph(compile_workflow(pipeline)),
                        {"first": "completed", "second": "completed", "third": "completed"})
    assert "$end" in path_taken(graph, completed=True) and "$end" not in path_taken(graph)


@pytest.mark.parametrize(("states", "joined"), [
    ({"count_a": "completed", "pick_mode": "completed", "quick": "completed"}, True),
    ({"count_a": "completed", "pick_mode": "completed", "quick": "running"}, False),
])
def test_a_join_is_passed_once_every_branch_that_reached_it_completed(states: dict[str, str], joined: bool) -> None:
    graph = _with_state(build_graph(compile_workflow(nested)), {"each_region": "completed", **states})
    assert ("parallel:count_a.join" in path_taken(graph)) is joined


def test_a_node_retried_shows_how_many_attempts_it_took() -> None:
    graph = _graph([("$start", "start"), ("flaky", "step")], [("$start", "flaky")])
    graph = replace(graph, nodes=[graph.nodes[0], GraphNode("flaky", "step", "flaky", "completed", 3)])
    root = ET.fromstring(render_svg(graph))
    node = next(g for g in root.iter(f"{SVG}g") if g.get("data-node") == "flaky")
    assert node.get("data-attempts") == "3"
    assert [t.text for t in node.iter(f"{SVG}text") if t.get("class") == "node-attempts"] == ["×3"]
