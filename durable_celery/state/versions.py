"""The compiled definitions workers registered, and the in-flight executions grouped by where
they stand: what ``durable plan`` reads (docs/deploys.md)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from durable_celery.compiler.ir import StateMachine
from durable_celery.state.tables import IN_FLIGHT_WHERE
from durable_celery.state.tables import workflow_executions as t
from durable_celery.state.tables import workflow_versions as v

#: (workflow, version hash, current node, node shape, rows, two example ids)
Group = tuple[str, str, "str | None", "str | None", int, list[str]]


def version_row(machine: StateMachine, now: datetime) -> dict[str, Any]:
    return {"workflow": machine.workflow, "version": machine.version, "label": machine.label,
            "states": machine.states_spec(), "entry": machine.entry, "first_seen": now}


def record_versions_txn(conn: Connection, machines: Sequence[StateMachine], now: datetime) -> None:
    """Store each machine's description once (a machine already stored is left as it was)."""
    if not machines:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite if conn.dialect.name == "sqlite" else None
    rows = [version_row(m, now) for m in machines]
    if dialect is None:  # pragma: no cover - the engine runs on PostgreSQL and SQLite
        stored = {(w, h) for w, h in conn.execute(select(v.c.workflow, v.c.version))}
        rows = [r for r in rows if (r["workflow"], r["version"]) not in stored]
        if rows:
            conn.execute(insert(v), rows)
        return
    conn.execute(dialect.insert(v).on_conflict_do_nothing(index_elements=["workflow", "version"]), rows)


def in_flight_groups_txn(conn: Connection) -> list[Group]:
    """The executions (and branches, iterations) not final, one row per (workflow, version,
    node, shape) with their count and up to two example ids: one scan of the in-flight index."""
    stmt = (select(t.c.workflow, t.c.version, t.c.current_node, t.c.node_shape, func.count(),
                   func.min(t.c.id), func.max(t.c.id))
            .where(text(IN_FLIGHT_WHERE))
            .group_by(t.c.workflow, t.c.version, t.c.current_node, t.c.node_shape))
    groups: list[Group] = []
    for workflow, version, node, shape, count, low, high in conn.execute(stmt):
        groups.append((workflow, version, node, shape, int(count), [low] if low == high else [low, high]))
    return groups


def stored_versions_txn(conn: Connection, workflows: Iterable[str]) -> dict[tuple[str, str], dict[str, Any]]:
    """The stored descriptions of ``workflows``' versions, by (workflow, version hash)."""
    names = sorted(set(workflows))
    if not names:
        return {}
    rows = conn.execute(select(v.c.workflow, v.c.version, v.c.label, v.c.states, v.c.entry, v.c.first_seen)
                        .where(v.c.workflow.in_(names))).mappings()
    return {(r["workflow"], r["version"]): dict(r) for r in rows}


def labels_txn(conn: Connection, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Any]:
    """The stored labels of (workflow, version hash) pairs; an unknown pair is left out."""
    wanted = set(pairs)
    if not wanted:
        return {}
    # by hash (a row per workflow and hash): no row-value IN, which not every SQLite takes
    rows = conn.execute(select(v.c.workflow, v.c.version, v.c.label)
                        .where(v.c.version.in_(sorted({h for _, h in wanted}))))
    return {(w, h): label for w, h, label in rows if (w, h) in wanted}
