"""Many new executions in one statement (``Durable.start_many``).

On PostgreSQL the rows travel as one JSON document: ``INSERT ... SELECT ... FROM
jsonb_to_recordset(:rows)``. One bind parameter whatever the batch size (a multi-row
``VALUES`` list would need one per column and row, and PostgreSQL allows 65,535), and only the
columns that differ from row to row are in it: the rest (workflow, status, timestamps, ...) is the
same for the whole batch and is bound once. SQLite, the embedded default, has no such function:
there the rows are one ``executemany`` in the same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import String, bindparam, cast, column, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection

from durable_celery.state.tables import workflow_executions as t

#: Keys looked up per statement when finding the executions that already hold them.
LOOKUP_CHUNK = 1000


def insert_executions_txn(conn: Connection, rows: Sequence[dict[str, Any]],
                          options: dict[str, Any] | None = None) -> tuple[list[str], list[bool]]:
    """Insert new executions (rows of one shape, as ``new_execution_rows`` builds them).

    A row whose ``idempotency_key`` is already used, by a stored execution or by an earlier row
    of ``rows``, inserts nothing. Returns, in the order of ``rows``, each one's execution id (the
    key holder's for those) and whether it was created. ``options``: per-statement execution
    options, as for ``insert_execution_txn``.
    """
    ids = [row["id"] for row in rows]
    created = [True] * len(rows)
    first_of: dict[str, int] = {}
    fresh: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        key = row.get("idempotency_key")
        if key is not None and key in first_of:  # a repeat within the batch: the first one wins
            ids[i], created[i] = ids[first_of[key]], False
            continue
        if key is not None:
            first_of[key] = i
        fresh.append(row)
    if not fresh:
        return ids, created
    opts = options or {}
    if conn.dialect.name == "postgresql":
        inserted = _insert_from_json(conn, fresh, unique=bool(first_of), options=opts)
    else:
        stmt = sqlite.insert(t).on_conflict_do_nothing(index_elements=["idempotency_key"]) if first_of else insert(t)
        conn.execute(stmt.execution_options(**opts), fresh)
        inserted = None  # executemany returns no rows: the key holders below tell
    if first_of:
        taken = [key for key, i in first_of.items() if inserted is None or ids[i] not in inserted]
        holders = _key_holders(conn, taken, opts)
        for key in taken:
            i = first_of[key]
            if holders[key] != ids[i]:
                ids[i], created[i] = holders[key], False
        for i, row in enumerate(rows):  # repeats point at their first row, which may have lost too
            key = row.get("idempotency_key")
            if key is not None and first_of[key] != i:
                ids[i] = ids[first_of[key]]
    return ids, created


def _insert_from_json(conn: Connection, rows: Sequence[dict[str, Any]], *, unique: bool,
                      options: dict[str, Any]) -> set[str] | None:
    """One ``INSERT ... SELECT FROM jsonb_to_recordset``; with ``unique``, ``ON CONFLICT DO
    NOTHING`` on the idempotency key, returning the ids it inserted."""
    names = list(rows[0])
    first = rows[0]
    varying = [n for n in names if any(r[n] is not first[n] and r[n] != first[n] for r in rows)]
    # A column holding the very same objects as another of its type (``context`` is ``input``,
    # ``root_id`` is ``id``) is sent once and selected twice. (Of its type: small integers are
    # shared objects, and an iteration's item 3 is its index 3, but JSON is no integer column.)
    sent: list[str] = []
    same_as: dict[str, str] = {}
    for n in varying:
        same_as[n] = next((m for m in sent if type(t.c[m].type) is type(t.c[n].type)
                           and all(r[n] is r[m] for r in rows)), n)
        if same_as[n] == n:
            sent.append(n)
    payload = json.dumps([{n: r[n] for n in sent} for r in rows], separators=(",", ":"), default=_json_default)
    records = (func.jsonb_to_recordset(cast(bindparam("rows", payload, type_=String), JSONB))
               .table_valued(*(column(n, t.c[n].type) for n in sent)).render_derived(with_types=True))
    values = [records.c[same_as[n]] if n in same_as else cast(bindparam(None, first[n], type_=t.c[n].type),
                                                              t.c[n].type)
              for n in names]
    stmt: Any = postgresql.insert(t).from_select(names, select(*values))
    if unique:
        stmt = stmt.on_conflict_do_nothing(index_elements=["idempotency_key"]).returning(t.c.id)
        return set(conn.execute(stmt.execution_options(**options)).scalars())
    conn.execute(stmt.execution_options(**options))
    return None


def _json_default(value: Any) -> Any:
    # Column values that JSON has no type for (timestamps); PostgreSQL parses ISO 8601.
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"a {type(value).__name__} cannot be sent as a column value")


def _key_holders(conn: Connection, keys: Sequence[str], options: dict[str, Any]) -> dict[str, str]:
    stmt = (select(t.c.idempotency_key, t.c.id).where(t.c.idempotency_key.in_(bindparam("keys", expanding=True)))
            .execution_options(**options))
    holders: dict[str, str] = {}
    for start in range(0, len(keys), LOOKUP_CHUNK):
        rows = conn.execute(stmt, {"keys": list(keys[start:start + LOOKUP_CHUNK])})
        holders.update((key, execution_id) for key, execution_id in rows)
    return holders
