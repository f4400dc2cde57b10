"""Schema migrations over Alembic's command API, shipped inside the package."""

from __future__ import annotations

import zlib
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

from durable_celery.state.db import Database

MIGRATIONS = Path(__file__).parent / "migrations"


def _config(conn: Connection | None, schema: str | None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    cfg.attributes["schema"] = schema
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config(None, None)).get_current_head()


def current_revision(db: Database) -> str | None:
    with db.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table_schema": db.schema})
        return context.get_current_revision()


def is_current(db: Database) -> bool:
    return current_revision(db) == head_revision()


def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the schema to ``revision``; safe to call from several processes at once (a
    Postgres advisory lock serialises them, SQLite's write lock does the same).

    A schema already at head is only read: no lock, no DDL, so a role with data privileges only
    (docs/security.md) may run it (``CREATE SCHEMA IF NOT EXISTS`` checks the privilege to
    create before it looks whether the schema exists)."""
    if revision == "head" and is_current(db):
        return
    with db.begin() as conn:
        if db.dialect == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": zlib.crc32(f"durable:{db.schema}".encode())})
            # the prefix matched a strict pattern (limits.check_prefix); quoted all the same
            schema = conn.dialect.identifier_preparer.quote_identifier(db.schema or "")
            conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {schema}"))
        command.upgrade(_config(conn, db.schema), revision)


def downgrade(db: Database, revision: str = "base") -> None:
    with db.begin() as conn:
        command.downgrade(_config(conn, db.schema), revision)
