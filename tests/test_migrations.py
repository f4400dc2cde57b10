"""The schema ships as Alembic migrations inside the package; it is created on first use, or
verified when auto-migration is off."""

from __future__ import annotations

import uuid

import pytest
from celery import Celery
from sqlalchemy import create_engine, inspect, text

from durable_celery import Durable, SchemaOutOfDate
from durable_celery.state import migrate
from durable_celery.state.compat import ENGINE_OPTIONS
from tests.conftest import POSTGRES


@pytest.fixture
def fresh_prefix() -> str:
    prefix = f"mig_{uuid.uuid4().hex[:8]}"
    yield prefix
    durable = Durable(Celery("cleanup", broker="memory://"), database_url=POSTGRES, prefix=prefix)
    with durable.db.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{prefix}" CASCADE'))
    durable.db.dispose()


def test_with_auto_migrate_off_a_missing_schema_is_reported_not_created(fresh_prefix: str) -> None:
    durable = Durable(Celery("p", broker="memory://"), database_url=POSTGRES, prefix=fresh_prefix,
                      auto_migrate=False)
    with pytest.raises(SchemaOutOfDate, match="durable migrate"):
        durable.list_executions()
    assert migrate.current_revision(durable.db) is None
    durable.db.dispose()


def test_upgrade_creates_the_tables_in_the_prefix_schema_and_is_repeatable(fresh_prefix: str) -> None:
    durable = Durable(Celery("p", broker="memory://"), database_url=POSTGRES, prefix=fresh_prefix)
    migrate.upgrade(durable.db)
    migrate.upgrade(durable.db)  # idempotent
    assert migrate.is_current(durable.db)
    with durable.db.connect() as conn:
        tables = set(inspect(conn).get_table_names(schema=fresh_prefix))
    assert {"workflow_executions", "step_executions", "alembic_version"} <= tables
    migrate.downgrade(durable.db, "base")
    assert migrate.current_revision(durable.db) is None
    migrate.upgrade(durable.db)
    assert durable.list_executions() == []
    durable.db.dispose()


def test_the_migration_matches_the_table_definitions(fresh_prefix: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from durable_celery.state.tables import metadata

    durable = Durable(Celery("p", broker="memory://"), database_url=POSTGRES, prefix=fresh_prefix)
    migrate.upgrade(durable.db)
    # The prefix schema as the default one, from the first connect: SQLAlchemy 1.4 reflects the
    # default schema it read then, whatever a later SET search_path says.
    engine = create_engine(durable.db.url, connect_args={"options": f"-csearch_path={fresh_prefix}"}, **ENGINE_OPTIONS)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table_schema": fresh_prefix})
        diff = [d for d in compare_metadata(context, metadata) if "alembic_version" not in repr(d)]
    engine.dispose()
    durable.db.dispose()
    assert diff == []
