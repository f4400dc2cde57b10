"""A SQLAlchemy ``Connection`` on Django's own database connection, so that a start inserts
its row in the transaction of the ``transaction.atomic()`` block it is called in.

SQLAlchemy runs the engine's statements (the same ones ``Durable.start`` runs, its types and
its schema map) on the DBAPI connection Django holds, and never ends Django's transaction:
the dialects below begin, commit, roll back, reset and close nothing, and touch nothing at
connect (the stock psycopg2 dialect would register adapters on Django's connection, psycopg's
a notice handler on every checkout). Django alone commits or rolls back, and closes.

Only PostgreSQL, on the driver Django's connection uses: psycopg 3 (SQLAlchemy 2) or psycopg2.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.postgresql.psycopg2 import PGDialect_psycopg2
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from durable_celery.state.compat import ENGINE_OPTIONS

#: the DBAPI connection being lent, read by the engines' ``creator`` at checkout
_LENT: ContextVar[Any] = ContextVar("durable_django_lent")


class _Borrowing:
    """Dialect methods that leave the transaction and the connection to their owner."""

    def do_begin(self, dbapi_connection: Any) -> None:
        pass  # the DBAPI connection is already in Django's transaction

    def do_commit(self, dbapi_connection: Any) -> None:
        pass

    def do_rollback(self, dbapi_connection: Any) -> None:
        pass

    def do_close(self, dbapi_connection: Any) -> None:
        pass

    def do_terminate(self, dbapi_connection: Any) -> None:
        pass

    def on_connect(self) -> None:
        return None


class BorrowingPsycopg2(_Borrowing, PGDialect_psycopg2):
    supports_statement_cache = True  # SQLAlchemy asks each dialect class itself


registry.register("postgresql.durable_django_psycopg2", __name__, "BorrowingPsycopg2")
_DRIVERS = {"psycopg2": "durable_django_psycopg2"}

try:
    from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
except ImportError:  # SQLAlchemy 1.4: no psycopg 3 dialect
    pass
else:
    class BorrowingPsycopg(_Borrowing, PGDialect_psycopg):
        supports_statement_cache = True

    registry.register("postgresql.durable_django_psycopg", __name__, "BorrowingPsycopg")
    _DRIVERS["psycopg"] = "durable_django_psycopg"

_ENGINES: dict[str, Engine] = {}


def driver_of(dbapi_connection: Any) -> str:
    """The top-level module of a DBAPI connection's driver: ``psycopg``, ``psycopg2``, ..."""
    return type(dbapi_connection).__module__.split(".")[0]


def can_borrow(dbapi_connection: Any) -> bool:
    """Whether statements can run on this DBAPI connection (a PostgreSQL driver SQLAlchemy
    has a dialect for, in this version)."""
    return driver_of(dbapi_connection) in _DRIVERS


@contextmanager
def borrowed(dbapi_connection: Any) -> Iterator[Connection]:
    """A SQLAlchemy Connection running its statements on ``dbapi_connection`` in the
    transaction that connection is in; closing it leaves that transaction and the connection
    as they were."""
    engine = _engine_for(driver_of(dbapi_connection))
    token = _LENT.set(dbapi_connection)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        _LENT.reset(token)


def _engine_for(driver: str) -> Engine:
    engine = _ENGINES.get(driver)
    if engine is None:
        # NullPool: each checkout asks the creator, so it is always the connection lent now;
        # giving it back "closes" it, which the dialect makes a no-op. The first checkout
        # initialises the dialect (a few SELECTs on the lent connection, no rollback); without
        # native hstore, it registers no hstore adapter on it either.
        engine = create_engine(f"postgresql+{_DRIVERS[driver]}://", creator=_LENT.get, poolclass=NullPool,
                               pool_reset_on_return=None, use_native_hstore=False, **ENGINE_OPTIONS)
        _ENGINES[driver] = engine
    return engine
