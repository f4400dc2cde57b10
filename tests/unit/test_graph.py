"""graph(): every state, its edges and joins, rendered as DOT, Mermaid and a dict."""

from __future__ import annotations

from durable_celery.compiler import compile_workflow
from durable_celery.graph import build_graph
from tests.proj.workflows import nested, poller, routing


def test_a_branching_workflow_has_labelled_case_edges_and_a_default_free_branch() -> None:
    graph = build_graph(compile_workflow(routing))
    edges = {(e.source, e.target, e.label) for e in graph.edges}
    assert ("$start", "triage", "") in edges
    assert ("branch:handle_invoice", "handle_invoice", "'invoice' | 'bill'") in edges
    assert ("handle_receipt", "finish", "") in edges and ("finish", "$end", "") in edges
    assert {n.kind for n in graph.nodes} == {"start", "end", "decision", "branch", "step"}


def test_nested_blocks_show_their_fan_outs_joins_and_loops() -> None:
    graph = build_graph(compile_workflow(nested))
    kinds = {n.id: n.kind for n in graph.nodes}
    assert kinds["each_region"] == "foreach" and kinds["parallel:count_a"] == "parallel"
    assert kinds["spin"] == "loop" and kinds["each_region.join"] == "join"
    edges = {(e.source, e.target, e.label) for e in graph.edges}
    assert ("parallel:count_a", "count_a", "count_a") in edges
    assert ("spin_once", "spin", "") in edges and ("spin", "spin_once", "repeat") in edges
    assert ("count_a", "parallel:count_a.join", "") in edges
    assert ("parallel:count_a.join", "merge_region", "") in edges


def test_renderings_name_every_node() -> None:
    graph = build_graph(compile_workflow(poller))
    dot, mermaid, data = graph.to_dot(), graph.to_mermaid(), graph.to_dict()
    for state in ("init_poll", "poll", "poll_once", "after_poll"):
        assert f'"{state}"' in dot and state in mermaid
    assert dot.startswith('digraph "poller"') and mermaid.startswith("flowchart TD")
    assert {n["id"] for n in data["nodes"]} >= {"init_poll", "poll", "$end"}


def test_every_edge_ends_at_a_node_even_where_a_block_ends_inside_a_parallel_branch() -> None:
    # the loop "spin" ends the default case of a branch, which ends a parallel branch: its exit
    # goes to that parallel block's join
    graph = build_graph(compile_workflow(nested))
    ids = {node.id for node in graph.nodes}
    assert [edge for edge in graph.edges if edge.target not in ids or edge.source not in ids] == []
    spin_exit = next(edge for edge in graph.edges if edge.source == "spin" and edge.label == "done")
    assert spin_exit.target.endswith(".join") and spin_exit.target != "each_region.join"
