"""Engines and transactions: one :class:`Database` per Durable instance.

A database that cannot be reached (down, restarting, a connection that broke) surfaces from
``begin``, ``single`` and ``connect`` as :class:`DatabaseUnavailable`, chaining the driver's
error; every other database error is raised as SQLAlchemy raised it.

Dead connections are not handed out after the server comes back: a pooled connection whose
server closed it (a restart, a shutdown, a terminated backend) is found at checkout, with no
round trip (:func:`_discard_if_closed`), and the pool's older connections go with it. A
connection that breaks without the server closing it (a network cut) fails its statement; SQLAlchemy
then invalidates the pool too (see :func:`unreachable`)."""

from __future__ import annotations

import os
import select
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, NoReturn

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, InvalidatePoolError, OperationalError
from sqlalchemy.pool import NullPool

from durable_celery.errors import DatabaseUnavailable, InvalidInput
from durable_celery.limits import check_prefix
from durable_celery.state.compat import ENGINE_OPTIONS, POSTGRES_DRIVER, enable_sqlite_returning


def normalise_url(url: str) -> str:
    """Use psycopg 3 for plain ``postgresql://`` URLs (psycopg2 on SQLAlchemy 1.4, which has no
    psycopg 3 dialect: there ``postgresql+psycopg://`` means psycopg2 too, so one URL serves both)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg"):
        parsed = parsed.set(drivername=POSTGRES_DRIVER)
    return parsed.render_as_string(hide_password=False)


#: SQLSTATEs of a server that went away or does not take connections yet: admin_shutdown,
#: crash_shutdown, cannot_connect_now (starting up, in recovery); and class 08, connection exceptions
_GONE = ("57P01", "57P02", "57P03")


def unreachable(exc: BaseException) -> bool:
    """Does ``exc`` say the database cannot be reached, rather than that a statement failed?

    A disconnect SQLAlchemy recognised (it invalidated the connection, and with it the pool), a
    connection exception or shutdown by its SQLSTATE, or a driver error with no SQLSTATE at all
    (psycopg's own "connection failed", "consuming input failed"). Serialization failures,
    deadlocks, timeouts and constraint violations carry a SQLSTATE of another class: not these."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    if not isinstance(exc, (OperationalError, InterfaceError)):
        return False
    state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)  # psycopg 3, psycopg2
    return state is None or str(state).startswith("08") or state in _GONE


class Database:
    """Owns the SQLAlchemy engine of one Durable instance and the schema prefix.

    The engine is created lazily and re-created in a forked child (Celery's prefork pool), since
    a connection pool must never be shared across processes.
    """

    def __init__(self, url: str, prefix: str) -> None:
        if not isinstance(url, str) or not url:
            raise InvalidInput(f"database_url must be a non-empty string, got {url!r}")
        self.url = normalise_url(url)
        #: the URL with its password hidden, for messages
        self.safe_url = make_url(self.url).render_as_string(hide_password=True)
        self.dialect = make_url(self.url).get_backend_name()
        if self.dialect not in ("postgresql", "sqlite"):
            raise InvalidInput(f"durable-celery stores state in PostgreSQL (or SQLite when embedded), not {self.dialect}")
        check_prefix(prefix)  # it is put in DDL and grants: a strict pattern, quoted all the same
        self.prefix = prefix
        self.schema: str | None = prefix if self.dialect == "postgresql" else None
        #: what puts the tables in the prefix schema; nothing on SQLite, which has no schemas
        #: (SQLAlchemy 1.4 would turn a map to None into "main.", which SQLite's UPDATE rejects)
        self.schema_options: dict[str, Any] = {"schema_translate_map": {None: self.schema}} if self.schema else {}
        self._engine: Engine | None = None
        self._autocommit: Engine | None = None
        self._autocommit_pid = 0
        self._pid = 0
        self._lock = threading.Lock()

    @property
    def engine(self) -> Engine:
        if self._engine is None or self._pid != os.getpid():
            with self._lock:
                if self._engine is None or self._pid != os.getpid():
                    for inherited in (self._engine, self._autocommit):
                        if inherited is not None:
                            inherited.dispose(close=False)  # the parent's connections stay the parent's
                    self._engine = self._create_engine()
                    self._pid = os.getpid()
        return self._engine

    @property
    def autocommit_engine(self) -> Engine:
        """A second pool whose connections stay in autocommit (switching one connection back and
        forth would cost a round trip at every checkout)."""
        engine = self.engine  # (re)created per process first
        if self._autocommit is None or self._autocommit_pid != self._pid:
            with self._lock:
                if self._autocommit is None or self._autocommit_pid != self._pid:
                    # no rollback when a connection goes back: in autocommit none holds a transaction
                    self._autocommit = self._create_engine(isolation_level="AUTOCOMMIT", pool_reset_on_return=None)
                    self._autocommit_pid = self._pid
        assert engine is not None
        return self._autocommit

    def _create_engine(self, **extra: Any) -> Engine:
        options: dict[str, Any] = {"execution_options": self.schema_options, **ENGINE_OPTIONS, **extra}
        if self.dialect == "sqlite":
            options["poolclass"] = NullPool
            options["connect_args"] = {"timeout": 30, "check_same_thread": False}
        else:
            # No pool_pre_ping: psycopg pings with an empty statement that Postgres counts as a
            # transaction of its own, one more per checkpoint. A connection the server closed is
            # found at checkout without a round trip instead (_discard_if_closed); one that broke
            # silently fails its statement (DatabaseUnavailable), and SQLAlchemy invalidates the pool.
            options.update(pool_size=5, max_overflow=5, pool_recycle=1800)
        engine = create_engine(self.url, **options)
        if self.dialect == "postgresql":
            event.listen(engine, "checkout", _discard_if_closed)
        if self.dialect == "sqlite":
            enable_sqlite_returning(engine)
            event.listen(engine, "connect", _sqlite_pragmas)
            # pysqlite's own transaction handling defers BEGIN; take the write lock at BEGIN so
            # two processes never deadlock upgrading a read lock.
            event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """One transaction: commits on success, rolls back on any exception."""
        with self._reached(self.engine.begin) as conn:
            yield conn

    @contextmanager
    def single(self) -> Iterator[Connection]:
        """A connection for one self-contained statement. On Postgres it runs in autocommit: the
        statement is its own transaction, with no BEGIN and COMMIT round trips around it."""
        if self.dialect != "postgresql":
            with self.begin() as conn:
                yield conn
            return
        with self._reached(self.autocommit_engine.connect) as conn:
            yield conn

    def autocommit_pool_connection(self) -> Any:
        """A driver connection from the autocommit pool, for a statement that skips SQLAlchemy's
        execution (``state/prepared.py``): the pool's proxy, whose ``close()`` gives it back."""
        engine = self.autocommit_engine
        try:
            return engine.raw_connection()
        except DBAPIError as exc:
            self.raise_if_unreachable(exc)
            raise
        except driver_errors(engine.dialect) as exc:  # a new connection that failed: raised as the driver raised it
            self.raise_driver_error(exc, None, None)

    def raise_driver_error(self, exc: Exception, statement: str | None, params: Any, *,
                           invalidated: bool = False) -> NoReturn:
        """Raise the driver's error ``exc`` as SQLAlchemy would (``DBAPIError`` and its
        subclasses), or :class:`DatabaseUnavailable` if it says the database cannot be reached."""
        dialect = self.engine.dialect
        wrapped = DBAPIError.instance(statement, params, exc, driver_errors(dialect), connection_invalidated=invalidated,
                                      dialect=dialect)
        if isinstance(wrapped, DBAPIError):
            self.raise_if_unreachable(wrapped)
        raise wrapped from exc

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with self._reached(self.engine.connect) as conn:
            yield conn

    @contextmanager
    def _reached(self, open_connection: Callable[[], AbstractContextManager[Connection]]) -> Iterator[Connection]:
        """The connection ``open_connection`` gives; a database that cannot be reached, on
        opening it or in the block, raises :class:`DatabaseUnavailable`."""
        try:
            with open_connection() as conn:
                yield conn
        except DBAPIError as exc:
            self.raise_if_unreachable(exc)
            raise

    def raise_if_unreachable(self, exc: DBAPIError) -> None:
        """Raise :class:`DatabaseUnavailable` from ``exc`` if it says the database cannot be
        reached (on PostgreSQL: SQLite's "database is locked" has no SQLSTATE either)."""
        if self.dialect == "postgresql" and unreachable(exc):
            lines = str(exc.orig if exc.orig is not None else exc).strip().splitlines()
            raise DatabaseUnavailable(self.safe_url, lines[0] if lines else type(exc).__name__) from exc

    def dispose(self) -> None:
        for engine in (self._engine, self._autocommit):
            if engine is not None:
                engine.dispose()
        self._engine = self._autocommit = None


def driver_errors(dialect: Any) -> type[Exception]:
    """The base class of the driver's errors (``Error`` of its DBAPI module)."""
    dbapi = getattr(dialect, "loaded_dbapi", None) or dialect.dbapi  # (SQLAlchemy 1.4: dbapi)
    error: type[Exception] = dbapi.Error
    return error


def _discard_if_closed(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
    """Pool checkout: refuse a connection the server has closed, and every connection pooled
    before it (a server that closed one most likely restarted). An idle connection has nothing
    to read; if its socket is readable, the server sent its goodbye (a FATAL notice, then EOF).
    One ``poll`` of the socket, no round trip; the pool then checks out a fresh connection."""
    try:
        fileno = dbapi_conn.pgconn.socket if hasattr(dbapi_conn, "pgconn") else dbapi_conn.fileno()  # psycopg 3, 2
    except Exception as exc:  # noqa: BLE001 - the driver knows it is closed already
        raise InvalidatePoolError(f"a pooled connection is closed: {exc}") from exc
    poller = select.poll()
    poller.register(fileno, select.POLLIN)
    if poller.poll(0):
        raise InvalidatePoolError("the server closed a pooled connection")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # let the "begin" listener issue BEGIN IMMEDIATE
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
