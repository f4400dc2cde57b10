"""``heartbeats``: when a process that must keep running last did its work (the beat tick)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, RowMapping

from durable_celery.state.tables import heartbeats as h

#: the beat tick's row
BEAT = "beat"


def beat_txn(conn: Connection, name: str, now: datetime, detail: str | None) -> None:
    """Record that ``name`` was alive at ``now`` (one upsert)."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(h).values(name=name, seen_at=now, detail=detail)
    conn.execute(stmt.on_conflict_do_update(index_elements=["name"],
                                            set_={"seen_at": stmt.excluded.seen_at, "detail": stmt.excluded.detail}))


def last_seen_txn(conn: Connection, name: str) -> RowMapping | None:
    return conn.execute(select(h).where(h.c.name == name)).mappings().first()
