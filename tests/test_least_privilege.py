"""Least privilege (issue 16): once an owner role has run `migrate`, workers, beat and clients run
as a role with data privileges only on the schema, exactly the grants of docs/security.md, and
never try DDL; that role cannot change the schema."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from durable_celery import Durable, SchemaOutOfDate
from durable_celery.testing.workers import beat
from tests.conftest import FAST, POSTGRES, ROOT, Project
from tests.proj.factory import make

Factory = Callable[..., Project]


def grants(schema: str, role: str) -> list[str]:
    """The grants of docs/security.md, for ``schema`` and ``role``."""
    return [
        f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"',
        f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"',
        f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA "{schema}" TO "{role}"',
    ]


@pytest.fixture
def data_role() -> Iterator[str]:
    """A login role with no privileges of its own, dropped afterwards."""
    role = f"dc_app_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE')
    try:
        yield role
    finally:
        with psycopg.connect(POSTGRES.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(f'DROP OWNED BY "{role}"')  # its grants
            conn.execute(f'DROP ROLE "{role}"')


def as_role(role: str) -> str:
    return make_url(POSTGRES).set(username=role, password=None).render_as_string(hide_password=False)


def test_workers_and_clients_run_as_a_role_with_data_privileges_only(data_role: str,
                                                                     project_factory: Factory) -> None:
    # (data_role first: the role outlives the project's worker and beat, which connect as it)
    # Given a schema migrated by its owner (the project's role), and a role granted data only
    p = project_factory()
    with p.durable.db.begin() as conn:
        for grant in grants(p.prefix, data_role):
            conn.execute(text(grant))
    url = as_role(data_role)
    # When a worker and beat run as that role (auto_migrate left on: a current schema is only read)
    p.worker(env={"DT_DB": url})
    p.processes.append(beat("tests.proj.app", env={**p.env, "DT_DB": url}, cwd=str(ROOT)).start())
    # and a client runs as that role with auto_migrate=False, as docs/security.md says
    _, client = make(p.broker, url, p.prefix, p.queue, auto_migrate=False, **FAST)
    try:
        # Then workflows run end to end: a pipeline, and a wait woken by an event
        done = client.start("pipeline", {"n": 1})
        waiting = client.start("listener", {"name": "go", "timeout": 60})
        assert p.wait(done).status == "completed"
        p.wait(waiting, statuses={"waiting"})
        client.send_event(waiting, "go", {"ok": True})
        assert p.wait(waiting).context == {"first": {"ok": True}, "second": None}
        # (the worker and beat did connect as that role)
        assert p.sql("SELECT count(*) FROM pg_stat_activity WHERE usename = :role AND pid <> pg_backend_pid()",
                     role=data_role)[0][0] >= 2
        # and every client read works
        assert len(client.list_executions()) == 2 and client.count_by_status()["completed"] == 2
        client.cleanup(older_than=3600, dry_run=True)
        assert list(client.subscribe(timeout=0.2)) == []  # a subscriber's heartbeat row and LISTEN
        # But that role cannot change the schema, nor create one
        with client.db.connect() as conn:
            for ddl in (f'CREATE TABLE "{p.prefix}".intruder (id int)',
                        f'ALTER TABLE "{p.prefix}".workflow_executions ADD COLUMN intruder int',
                        f'DROP TABLE "{p.prefix}".alembic_version',
                        f'TRUNCATE "{p.prefix}".workflow_executions',
                        'CREATE SCHEMA intruder'):
                with pytest.raises(Exception, match="permission denied|must be owner"):
                    with conn.begin():
                        conn.execute(text(ddl))
    finally:
        client.db.dispose()


def test_a_data_only_role_on_a_schema_behind_gets_schema_out_of_date_and_tries_no_ddl(data_role: str) -> None:
    # Given a schema that exists but was never migrated, granted to the data role
    prefix = f"t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{prefix}"')
        conn.execute(f'GRANT USAGE ON SCHEMA "{prefix}" TO "{data_role}"')
    durable = Durable(database_url=as_role(data_role), prefix=prefix, auto_migrate=False)
    try:
        # When it is used, then it says to migrate, and nothing was created
        with pytest.raises(SchemaOutOfDate, match="durable migrate"):
            durable.ensure_schema()
        with psycopg.connect(POSTGRES.replace("+psycopg", "")) as conn:
            row = conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = %s",
                               (prefix,)).fetchone()
            assert row is not None and row[0] == 0
    finally:
        durable.db.dispose()
        with psycopg.connect(POSTGRES.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{prefix}" CASCADE')
