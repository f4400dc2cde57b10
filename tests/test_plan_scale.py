"""``durable plan`` with 100,000 in-flight executions: it groups them in SQL, on the in-flight
index, and answers in well under a second (the rows are written with set-based SQL, as
bench/scale_fill.py does)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from celery import Celery
from psycopg import sql

from durable_celery import Durable, Workflow
from tests.conftest import POSTGRES

#: a database of this test's own: the other tests' open transactions in ``test`` would keep
#: VACUUM from marking its pages all-visible (the horizon is per database), and the planner then
#: prices the in-flight index's index-only scan like a scan of the table
DATABASE = "durable_test_plan_scale"

IN_FLIGHT = 100_000
FINISHED = 400_000

bulk = Workflow("bulk_order", version=3)
for _name in ("reserve", "charge", "wait_go", "ship"):
    bulk.step(name=_name)(lambda ctx: ctx)

# (g % 10) 0-5: on the current version, spread over its steps; 6-8: on an old version, at a
# step unchanged since; 9: on an old version, at a step that no longer exists
_FILL = """
INSERT INTO {s}.workflow_executions
  (id, workflow, version, status, queue, priority, current_node, node_shape, attempt, entered_seq, seq, kind,
   created_at, updated_at, completed_at)
SELECT md5('p' || g)::uuid::text, 'bulk_order',
       CASE WHEN g % 10 < 6 THEN {current} ELSE 'oldversion000001' END,
       CASE WHEN g > {in_flight} THEN 'completed'
            ELSE (ARRAY['waiting', 'running', 'pending', 'waiting'])[1 + g % 4] END,
       'durable', 0,
       CASE WHEN g % 10 < 6 THEN (ARRAY['reserve', 'charge', 'wait_go', 'ship'])[1 + g % 4]
            WHEN g % 10 < 9 THEN 'wait_go' ELSE 'approve' END,
       CASE WHEN g % 10 < 6 THEN (ARRAY[{shapes}])[1 + g % 4]
            WHEN g % 10 < 9 THEN {wait_shape} ELSE 'a1b2c3d4e5f60718' END,
       1, 1, 2, 'workflow', now() - g * interval '1 second', now(),
       CASE WHEN g > {in_flight} THEN now() END
  FROM generate_series(1, {total}) AS g
"""


@pytest.fixture
def own_database() -> Iterator[tuple[str, str]]:
    """The URL of this test's database and a schema name in it, dropped afterwards."""
    admin = POSTGRES.replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone() is None:
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
            except psycopg.errors.DuplicateDatabase:  # another run made it meanwhile
                pass
    url = POSTGRES.rsplit("/", 1)[0] + f"/{DATABASE}"
    schema = f"t_{uuid.uuid4().hex[:10]}"
    try:
        yield url, schema
    finally:
        with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.mark.timeout(300)
def test_plan_groups_100000_in_flight_executions_in_sql_in_well_under_a_second(
        own_database: tuple[str, str]) -> None:
    url, schema = own_database
    durable = Durable(Celery("plan-scale", broker="memory://"), database_url=url, prefix=schema, workflows=[bulk])
    durable.ensure_schema()
    try:
        machine = durable.registry.machine_for(bulk)
        shapes = [machine.states[n].shape for n in ("reserve", "charge", "wait_go", "ship")]
        # Given 100,000 in-flight executions (and 400,000 finished) of one workflow
        with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(sql.SQL(_FILL).format(
                s=sql.Identifier(schema), current=sql.Literal(machine.version),
                shapes=sql.SQL(", ").join(sql.Literal(s) for s in shapes), wait_shape=sql.Literal(shapes[2]),
                in_flight=sql.Literal(IN_FLIGHT), total=sql.Literal(IN_FLIGHT + FINISHED)))
            conn.execute(sql.SQL("VACUUM ANALYZE {}.workflow_executions").format(sql.Identifier(schema)))
            # Then the grouping reads the in-flight index, not the table
            explained = "\n".join(row[0] for row in conn.execute(sql.SQL(
                "EXPLAIN SELECT workflow, version, current_node, node_shape, count(*), min(id), max(id) "
                "FROM {}.workflow_executions WHERE status IN ('pending', 'running', 'waiting', 'compensating') "
                "GROUP BY workflow, version, current_node, node_shape").format(sql.Identifier(schema))))
        assert "ix_workflow_executions_in_flight" in explained, explained
        # When the plan is made (the best of five: the machine is shared)
        durable.plan()
        runs = []
        for _ in range(5):
            began = time.perf_counter()
            made = durable.plan()
            runs.append(time.perf_counter() - began)
        # Then it counts every one, right, in well under a second
        plan_of = made.workflow("bulk_order")
        assert plan_of is not None
        assert plan_of.counts == {"kept": 0, "unchanged": 90_000, "changed": 0, "gone": 10_000}
        assert made.stranded == 10_000 and not made.ok
        print(f"\nplan of 100,000 in-flight executions: {sorted(round(r * 1000) for r in runs)} ms")
        assert min(runs) < 0.5, f"plan took {sorted(round(r * 1000) for r in runs)} ms"
    finally:
        durable.db.dispose()
