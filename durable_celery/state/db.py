"""Engines and transactions: one :class:`Database` per Durable instance."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import NullPool

from durable_celery.errors import InvalidInput
from durable_celery.limits import check_prefix
from durable_celery.state.compat import ENGINE_OPTIONS, POSTGRES_DRIVER, enable_sqlite_returning


def normalise_url(url: str) -> str:
    """Use psycopg 3 for plain ``postgresql://`` URLs (psycopg2 on SQLAlchemy 1.4, which has no
    psycopg 3 dialect: there ``postgresql+psycopg://`` means psycopg2 too, so one URL serves both)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg"):
        parsed = parsed.set(drivername=POSTGRES_DRIVER)
    return parsed.render_as_string(hide_password=False)


class Database:
    """Owns the SQLAlchemy engine of one Durable instance and the schema prefix.

    The engine is created lazily and re-created in a forked child (Celery's prefork pool), since
    a connection pool must never be shared across processes.
    """

    def __init__(self, url: str, prefix: str) -> None:
        if not isinstance(url, str) or not url:
            raise InvalidInput(f"database_url must be a non-empty string, got {url!r}")
        self.url = normalise_url(url)
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
                    self._autocommit = self._create_engine(isolation_level="AUTOCOMMIT")
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
            # transaction of its own, one more per checkpoint. A connection that went stale fails
            # its statement instead; the pool is then invalidated, and the attempt in flight is
            # re-run through the lease / re-dispatch recovery like any crash.
            options.update(pool_size=5, max_overflow=5, pool_recycle=1800)
        engine = create_engine(self.url, **options)
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
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def single(self) -> Iterator[Connection]:
        """A connection for one self-contained statement. On Postgres it runs in autocommit: the
        statement is its own transaction, with no BEGIN and COMMIT round trips around it."""
        if self.dialect != "postgresql":
            with self.begin() as conn:
                yield conn
            return
        with self.autocommit_engine.connect() as conn:
            yield conn

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    def dispose(self) -> None:
        for engine in (self._engine, self._autocommit):
            if engine is not None:
                engine.dispose()
        self._engine = self._autocommit = None


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # let the "begin" listener issue BEGIN IMMEDIATE
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
