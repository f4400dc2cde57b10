"""A hot statement run on the driver's own cursor: compiled once per database (its dialect and
schema), its values converted by the same type processors SQLAlchemy would apply, and sent
with ``cursor.execute``. The step path's checkpoint runs here: through ``Connection.execute`` a
cached statement still costs about as much Python as the round trip it makes (an execution
context, the cache lookup, the schema translation, a result object), all of it the same at
every step.

What the connection pool and ``Database`` give every other statement still applies: the
connection is checked out of the autocommit pool (its checkout check runs), a connection the
server dropped is invalidated, an unreachable database raises :class:`DatabaseUnavailable`,
and any other driver error is raised as SQLAlchemy's own exception class for it (``DBAPIError``
and its subclasses). psycopg 3 prepares the statement on the server after its fifth run on a
connection (``prepare_threshold``), psycopg2 sends it as text: the same as through SQLAlchemy.
On psycopg 3.2 and later the statement is sent in PostgreSQL's own ``$1`` placeholders on a
``RawCursor``: psycopg otherwise parses the named placeholders of a statement at every run
once it is longer than 4 kB or has more than 50 parameters (it caches only smaller ones), and a
parallel branch's end is such a statement.

Only on PostgreSQL: SQLite (the embedded store) runs statements through SQLAlchemy as before.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

from durable_celery.state.db import Database, driver_errors


class PreparedStatement:
    """``statement`` compiled for ``db``; :meth:`first` runs it and returns its first row."""

    def __init__(self, db: Database, statement: ClauseElement) -> None:
        assert db.dialect == "postgresql", "prepared statements are for PostgreSQL only"
        dialect = db.engine.dialect
        schema = db.schema_options.get("schema_translate_map")
        compiled = statement.compile(dialect=dialect, schema_translate_map=schema, render_schema_translate=True)
        assert isinstance(compiled, SQLCompiler)
        if "POSTCOMPILE" in compiled.string:  # an IN over a list parameter, expanded at each execution
            raise ValueError("a prepared statement takes no list parameter: write the list as literals")
        self._db = db
        self._dialect: Dialect = dialect
        self._errors = driver_errors(dialect)
        self.sql = compiled.string
        self._columns: list[str] = []  # the names of the rows' columns, once it has run
        # whether it returns rows, once it has run: psycopg builds ``cursor.description`` anew at
        # each read, a column object per column (a claim returns about thirty)
        self._returns_rows: bool | None = None
        # each parameter's conversion, as SQLAlchemy would apply it (JSON, for one), and the
        # values the statement carries itself (its literals), converted once
        self._processors: dict[str, Callable[[Any], Any]] = {}
        self._fixed: dict[str, Any] = {}
        for bind, name in compiled.bind_names.items():  # each parameter and its name in the SQL
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if not bind.required:
                self._fixed[name] = processor(bind.effective_value) if processor else bind.effective_value
            elif processor is not None:
                self._processors[name] = processor
        self._raw_cursor = _raw_cursor(dialect)
        self._order: list[str] = []  # the parameters' names by position, on a raw cursor
        if self._raw_cursor is not None:
            self.sql, self._order = _positional(self.sql)

    def first_mapping(self, params: Mapping[str, Any]) -> dict[str, Any] | None:
        """:meth:`first`, as a mapping of its column names (those of ``RETURNING``)."""
        row = self.first(params)
        return None if row is None else dict(zip(self._columns, row))

    def first(self, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """Run the statement with ``params`` (every bind parameter, by name) in autocommit; its
        first row, or None. The driver decodes the row's values (JSON, timestamps with their
        time zone), as SQLAlchemy leaves it to do on PostgreSQL."""
        processors = self._processors
        values: Any = {name: processors[name](value) if name in processors else value for name, value in params.items()}
        values.update(self._fixed)
        if self._raw_cursor is not None:
            values = [values[name] for name in self._order]
        pooled = self._db.autocommit_pool_connection()
        try:
            cursor = pooled.cursor() if self._raw_cursor is None else self._raw_cursor(pooled.dbapi_connection)
            try:
                cursor.execute(self.sql, values)
                if self._returns_rows is None:  # the same at every run: read once
                    description = cursor.description
                    self._returns_rows = description is not None
                    self._columns = [column[0] for column in description or ()]
                if not self._returns_rows:
                    return None
                row: tuple[Any, ...] | None = cursor.fetchone()
                return row
            finally:
                cursor.close()
        except self._errors as exc:
            # as SQLAlchemy does: a connection the server dropped leaves the pool
            disconnect = self._dialect.is_disconnect(exc, pooled.dbapi_connection, None)  # type: ignore[arg-type]
            if disconnect:
                pooled.invalidate(exc)
            self._db.raise_driver_error(exc, self.sql, values, invalidated=disconnect)
        finally:
            pooled.close()  # back to the pool (invalidated ones are discarded)


def _raw_cursor(dialect: Dialect) -> Callable[[Any], Any] | None:
    """psycopg's ``RawCursor`` (3.2 and later), which takes ``$1`` placeholders as they are."""
    if dialect.driver != "psycopg":
        return None
    dbapi = getattr(dialect, "loaded_dbapi", None) or dialect.dbapi
    return getattr(dbapi, "RawCursor", None)


_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%%")


def _positional(sql: str) -> tuple[str, list[str]]:
    """``sql`` in named placeholders (``%(name)s``, ``%%`` for a percent sign) as PostgreSQL's
    own positional ones, and the names by position (a name used twice keeps its one position)."""
    order: list[str] = []

    def position(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "%"
        if name not in order:
            order.append(name)
        return f"${order.index(name) + 1}"

    return _PLACEHOLDER.sub(position, sql), order


_PREPARED: weakref.WeakKeyDictionary[Database, dict[Hashable, PreparedStatement]] = weakref.WeakKeyDictionary()


def prepared_for(db: Database, key: Hashable, build: Callable[[], ClauseElement]) -> PreparedStatement:
    """The statement ``build()`` makes, prepared for ``db`` once per ``key`` (and kept while
    ``db`` lives)."""
    statements = _PREPARED.setdefault(db, {})
    prepared = statements.get(key)
    if prepared is None:
        prepared = statements[key] = PreparedStatement(db, build())
    return prepared
