"""Engines and transactions: one :class:`Database` per Durable instance."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from durable_celery.errors import InvalidInput


def normalise_url(url: str) -> str:
    """Use psycopg 3 for plain ``postgresql://`` URLs."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
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
        if not prefix.isidentifier():
            raise InvalidInput(f"prefix must be a plain identifier, got {prefix!r}")
        self.prefix = prefix
        self.schema: str | None = prefix if self.dialect == "postgresql" else None
        self._engine: Engine | None = None
        self._pid = 0
        self._lock = threading.Lock()

    @property
    def engine(self) -> Engine:
        if self._engine is None or self._pid != os.getpid():
            with self._lock:
                if self._engine is None or self._pid != os.getpid():
                    if self._engine is not None:
                        self._engine.dispose(close=False)  # the parent's connections stay the parent's
                    self._engine = self._create_engine()
                    self._pid = os.getpid()
        return self._engine

    def _create_engine(self) -> Engine:
        options: dict[str, Any] = {"execution_options": {"schema_translate_map": {None: self.schema}}}
        if self.dialect == "sqlite":
            options["poolclass"] = NullPool
            options["connect_args"] = {"timeout": 30, "check_same_thread": False}
        else:
            options.update(pool_pre_ping=True, pool_size=5, max_overflow=5)
        engine = create_engine(self.url, **options)
        if self.dialect == "sqlite":
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
    def connect(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # let the "begin" listener issue BEGIN IMMEDIATE
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
