"""What differs between SQLAlchemy 1.4 and 2.x, in one place. Everything else is written in the
2.0 style that 1.4 also runs (``select(...)``, ``Result.mappings()``, ``sqlalchemy.engine``
imports). Remove this module with SQLAlchemy 1.4 support."""

from __future__ import annotations

from typing import Any

import sqlalchemy
from sqlalchemy.engine import Engine

SQLALCHEMY_2 = int(sqlalchemy.__version__.split(".")[0]) >= 2

#: create_engine options: on 1.4, ``future=True`` gives the 2.0 Connection (autobegin, commit()).
ENGINE_OPTIONS: dict[str, Any] = {} if SQLALCHEMY_2 else {"future": True}

#: The driver for ``postgresql://`` URLs: psycopg 3 on SQLAlchemy 2; 1.4 has no dialect for it.
POSTGRES_DRIVER = "postgresql+psycopg" if SQLALCHEMY_2 else "postgresql+psycopg2"


def enable_sqlite_returning(engine: Engine) -> None:
    """SQLAlchemy 1.4 renders no RETURNING for SQLite (2.0 does, on SQLite 3.35 and newer), and
    the embedded store claims and moves its rows with ``UPDATE ... RETURNING``: compile it as
    2.0 does. SQLite itself runs it (its RETURNING makes every change at the first step)."""
    if not SQLALCHEMY_2:
        engine.dialect.statement_compiler = _SQLiteReturningCompiler


if not SQLALCHEMY_2:
    from sqlalchemy.dialects.sqlite.base import SQLiteCompiler
    from sqlalchemy.sql import expression

    class _SQLiteReturningCompiler(SQLiteCompiler):  # type: ignore[misc]
        # as PGCompiler.returning_clause of SQLAlchemy 1.4 (mypy sees 2.x, whose signature differs)
        def returning_clause(self, stmt: Any, returning_cols: Any) -> str:  # type: ignore[override]
            compiler: Any = self
            found: Any = expression._select_iterables(returning_cols)
            columns = [compiler._label_returning_column(stmt, c, fallback_label_name=c._non_anon_label) for c in found]
            return "RETURNING " + ", ".join(columns)
