"""``live_events``: the lifecycle events ``subscribe`` reads (see ``runtime/live.py``), and the
subscribers' heartbeats (rows of ``heartbeats`` named ``subscriber:<id>``) that tell the
engine whether anyone reads them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Text, bindparam, cast, delete, func, insert, select
from sqlalchemy.engine import Connection, RowMapping

from durable_celery.state.tables import heartbeats as h
from durable_celery.state.tables import live_events as e

#: the prefix of a subscriber's row in ``heartbeats``
SUBSCRIBER = "subscriber:"


def channel(prefix: str) -> str:
    """The NOTIFY channel of one Durable instance (its prefix is a plain identifier)."""
    return f"durable_live_{prefix}"


def emit_txn(conn: Connection, events: Sequence[Mapping[str, Any]], notify: str | None) -> None:
    """Insert ``events``; on PostgreSQL, in the same statement, NOTIFY ``notify`` so that
    listening subscribers read them now (delivered at commit, in commit order)."""
    if not events:
        return
    if notify is None or conn.dialect.name != "postgresql":
        conn.execute(insert(e), list(events))
        return
    stmt = insert(e).values(list(events)).returning(e.c.id).cte("inserted")
    conn.execute(select(func.pg_notify(bindparam("channel"), cast(func.max(stmt.c.id), Text))).select_from(stmt),
                 {"channel": notify})


def read_txn(conn: Connection, after: int, *, execution_id: str | None, workflow: str | None,
             kinds: Iterable[str] | None, limit: int) -> list[RowMapping]:
    """Events with an id above ``after``, oldest first, matching the filters (an execution
    matches the events of its branches and iterations too, through ``root_id``)."""
    stmt = select(e).where(e.c.id > after)
    if execution_id is not None:
        stmt = stmt.where((e.c.execution_id == execution_id) | (e.c.root_id == execution_id))
    if workflow is not None:
        stmt = stmt.where(e.c.workflow == workflow)
    if kinds is not None:
        stmt = stmt.where(e.c.kind.in_(list(kinds)))
    return list(conn.execute(stmt.order_by(e.c.id).limit(limit)).mappings())


def newest_id_txn(conn: Connection) -> int:
    """The id of the newest event kept (0 if none): where a new subscription starts."""
    return int(conn.execute(select(func.coalesce(func.max(e.c.id), 0))).scalar_one())


def prune_txn(conn: Connection, before: datetime) -> int:
    """Delete events older than ``before`` (on the ``at`` index)."""
    return int(conn.execute(delete(e).where(e.c.at < before)).rowcount)


def subscribed_since_txn(conn: Connection, since: datetime) -> bool:
    """Has any subscriber been alive since ``since``?"""
    stmt = select(h.c.name).where(h.c.name.like(f"{SUBSCRIBER}%"), h.c.seen_at >= since).limit(1)
    return conn.execute(stmt).first() is not None


def forget_subscribers_txn(conn: Connection, before: datetime) -> None:
    """Delete the heartbeats of subscribers not seen since ``before``."""
    conn.execute(delete(h).where(h.c.name.like(f"{SUBSCRIBER}%"), h.c.seen_at < before))
