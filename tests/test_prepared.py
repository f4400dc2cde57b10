"""A statement run on the driver's cursor (``state/prepared.py``) writes what SQLAlchemy would
write, raises what SQLAlchemy would raise, and survives its connection being killed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

import pytest
from sqlalchemy import bindparam, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError

from durable_celery.errors import DatabaseUnavailable
from durable_celery.state.db import Database
from durable_celery.state.prepared import PreparedStatement, prepared_for
from durable_celery.state.tables import workflow_executions as t
from tests.conftest import Project

Factory = Callable[..., Project]

COLUMNS = ("id", "root_id", "kind", "workflow", "version", "status", "queue", "priority", "input", "context",
           "current_node", "node_shape", "attempt", "seq", "entered_seq", "loops", "created_at", "updated_at")


#: when every row of these tests was created
WHEN = datetime(2026, 12, 7, 4, 0, tzinfo=timezone.utc)


def row_values(execution_id: str) -> dict[str, object]:
    return {"id": execution_id, "root_id": execution_id, "kind": "workflow", "workflow": "w", "version": "v1",
            "status": "running", "queue": "q", "priority": 0, "input": {"n": 1}, "context": {"nested": [1, "two", None]},
            "current_node": "s0", "node_shape": "sh", "attempt": 1, "seq": 0, "entered_seq": 0, "loops": None,
            "created_at": WHEN, "updated_at": WHEN}


def insert_statement() -> object:
    return insert(t).values({c: bindparam(c, type_=t.c[c].type) for c in COLUMNS}).returning(t.c.id)


def inserter(db: Database) -> PreparedStatement:
    """The prepared INSERT of a row of ``row_values``, returning its id."""
    return prepared_for(db, "test-insert", insert_statement)


def test_a_prepared_insert_stores_what_sqlalchemy_stores(project_factory: Factory) -> None:
    p = project_factory("redis")
    db = p.durable.db
    # Given the same row inserted once through SQLAlchemy and once through the prepared statement
    with db.begin() as conn:
        conn.execute(insert(t).values(row_values("a")))
    prepared = inserter(db)
    assert prepared.first(row_values("b")) == ("b",)
    # Then both rows read back the same: JSON, a None JSON column, the timestamp
    with db.connect() as conn:
        rows = {r["id"]: r for r in conn.execute(select(t).where(t.c.id.in_(["a", "b"]))).mappings()}
    for column in COLUMNS[2:]:
        assert rows["a"][column] == rows["b"][column], column
    assert rows["b"]["context"] == {"nested": [1, "two", None]} and rows["b"]["created_at"] == WHEN
    with db.connect() as conn:  # and the same as stored: JSON null for None, not SQL NULL, in both
        stored = conn.execute(text(f'SELECT DISTINCT loops::text, context::text, input::text, created_at '
                                   f'FROM "{p.prefix}".workflow_executions WHERE id IN (\'a\', \'b\')')).all()
    assert len(stored) == 1 and stored[0][0] == "null"
    # And it is built once per key and database
    assert inserter(db) is prepared


def test_a_prepared_statement_raises_sqlalchemys_error_and_keeps_its_connection(project_factory: Factory) -> None:
    p = project_factory("redis")
    db = p.durable.db
    prepared = inserter(db)
    prepared.first(row_values("dup"))
    # When the same key is inserted again, the driver's unique violation comes as SQLAlchemy's
    with pytest.raises(IntegrityError):
        prepared.first(row_values("dup"))
    # And the connection is still good for the next statement
    assert prepared.first(row_values("next")) == ("next",)


def test_a_connection_killed_under_its_statement_raises_database_unavailable_and_is_not_reused(
        project_factory: Factory) -> None:
    p = project_factory("redis")
    db = p.durable.db
    # Given a statement whose backend is terminated while it runs (as a server restart does)
    suicide = prepared_for(db, "test-terminate", lambda: select(func.pg_terminate_backend(func.pg_backend_pid())))
    # Then it raises DatabaseUnavailable, naming the database, not the driver's error
    with pytest.raises(DatabaseUnavailable) as caught:
        suicide.first({})
    assert isinstance(caught.value.__cause__, OperationalError)  # SQLAlchemy's, chaining the driver's
    # And the dead connection went out of the pool: the next statement runs on a fresh one
    inserted = inserter(db)
    assert inserted.first(row_values("after")) == ("after",)


def test_a_prepared_statement_names_its_returned_columns_and_refuses_a_list_parameter(
        project_factory: Factory) -> None:
    p = project_factory("redis")
    db = p.durable.db
    inserter(db).first(row_values("named"))
    # A row comes back by the names RETURNING gives its columns, decoded by the driver
    read = prepared_for(db, "test-read", lambda: update(t).where(t.c.id == bindparam("id"))
                        .values(attempt=bindparam("attempt")).returning(t.c.id, t.c.context, t.c.created_at))
    assert read.first_mapping({"id": "named", "attempt": 2}) == {
        "id": "named", "context": {"nested": [1, "two", None]}, "created_at": WHEN}
    assert read.first_mapping({"id": "missing", "attempt": 2}) is None
    # A list parameter (expanded at each execution) cannot be prepared: the error says what to do
    with pytest.raises(ValueError, match="literals"):
        prepared_for(db, "test-list", lambda: select(t.c.id).where(t.c.status.in_(["running", "waiting"])))


def test_whether_a_statement_returns_rows_is_read_once_and_holds_at_every_run(project_factory: Factory) -> None:
    p = project_factory("redis")
    db = p.durable.db
    inserter(db).first(row_values("r"))
    # Given a RETURNING statement whose first run matches no row
    read = PreparedStatement(db, update(t).where(t.c.id == bindparam("id")).values(attempt=bindparam("attempt"))
                             .returning(t.c.id, t.c.attempt))
    assert read.first_mapping({"id": "missing", "attempt": 2}) is None
    # Then a later run that matches one still returns it, by its columns' names
    assert read.first_mapping({"id": "r", "attempt": 3}) == {"id": "r", "attempt": 3}
    # And a statement without RETURNING gives None at every run, past psycopg's server-side
    # prepare (the sixth), and does its work each time
    bump = PreparedStatement(db, update(t).where(t.c.id == bindparam("id")).values(attempt=t.c.attempt + 1))
    assert [bump.first({"id": "r"}) for _ in range(7)] == [None] * 7
    with db.connect() as conn:
        assert conn.execute(select(t.c.attempt).where(t.c.id == "r")).scalar_one() == 3 + 7


def test_a_long_statement_with_a_repeated_parameter_and_a_percent_sign_runs_with_its_values(
        project_factory: Factory) -> None:
    p = project_factory("redis")
    db = p.durable.db
    # Given a statement longer than psycopg caches the parsing of (4 kB), which uses one parameter
    # twice and matches a literal percent sign (sent in PostgreSQL's own placeholders: `$1`)
    padding = " AND ".join(f"'{i}' = '{i}'" for i in range(400))
    statement = (select(t.c.id, bindparam("tag") + "-" + bindparam("tag"))
                 .where(t.c.id.like("a%"), t.c.workflow == bindparam("workflow"), text(padding)))
    prepared = PreparedStatement(db, statement)
    assert len(prepared.sql) > 4096
    prepared_for(db, "test-insert", insert_statement).first(row_values("a1"))
    # When it runs six times (past the fifth, psycopg prepares it on the server)
    for _ in range(3):
        # Then every parameter lands where it belongs
        assert prepared.first({"tag": "x", "workflow": "w"}) == ("a1", "x-x")
        assert prepared.first({"tag": "x", "workflow": "other"}) is None
