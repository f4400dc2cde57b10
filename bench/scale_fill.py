"""Big tables for ``bench.scale``: set-based SQL (``INSERT ... SELECT generate_series``) that fills
an engine schema, already migrated, with what a busy deployment accumulates.

* ``finished`` executions, created over the last 30 days: 85 % completed, 10 % failed (with an
  error), 5 % cancelled; one in 20 is a foreach iteration of the one before it (a child row);
  one in 10 has an idempotency key; one in 5 keeps its step attempts (5 ``step_executions``
  rows each, with input and output) and one in 10 a resolved sleep in ``waits``.
* ``waiting`` executions, suspended in a step: half asleep until a far-future timer, three in
  ten waiting for an event (half of them with a timeout, each with a consumed event of an
  earlier wait in ``events``), one in ten for a human input, one in ten for a child workflow
  (the next waiting execution, which is that caller's child); a third have a workflow deadline
  a week ahead. Each has its pending wait in ``waits`` and its earlier attempts recorded.
* 200 cron schedules, enabled, next due in the future.

Nothing in them is due: the tick's sweeps find nothing to do, so what they cost is what
finding nothing costs among that many rows. Ids are ``md5`` uuids, so a fill is the same every
time. ``VACUUM ANALYZE`` at the end leaves the tables as autovacuum would (statistics, and the
visibility map an index-only scan relies on).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg
from psycopg import sql

WORKFLOWS = ("process_order", "send_report", "sync_account", "bill_customer", "onboard_user")
TABLES = ("workflow_executions", "step_executions", "waits", "events", "scheduled_workflows")

_FINISHED = """
INSERT INTO {s}.workflow_executions
  (id, workflow, version, status, queue, priority, input, context, current_node, node_shape, attempt,
   entered_seq, seq, dispatched_at, error, parent_id, kind, root_id, parent_seq, branch_index, item,
   idempotency_key, lost_leases, redispatches, created_at, started_at, completed_at, updated_at)
SELECT md5('f' || g)::uuid::text,
       (ARRAY['process_order', 'send_report', 'sync_account', 'bill_customer', 'onboard_user'])[1 + g % 5],
       'v1',
       CASE WHEN g % 20 < 17 THEN 'completed' WHEN g % 20 < 19 THEN 'failed' ELSE 'cancelled' END,
       'durable', 0,
       jsonb_build_object('id', g, 'items', jsonb_build_array('book', 'pen'), 'customer', 'c' || g % 5000),
       jsonb_build_object('id', g, 'charge_id', 'ch_' || g, 'total', (g % 1000) / 10.0, 'ok', true),
       NULL, NULL, 1, 8, 10, ts + interval '2 seconds',
       CASE WHEN g % 20 IN (17, 18) THEN jsonb_build_object(
                 'type', 'ValueError', 'message', 'card declined for order ' || g, 'step', 'charge',
                 'traceback', 'Traceback (most recent call last): ... ValueError: card declined')
            WHEN g % 20 = 19 THEN jsonb_build_object('type', 'Cancelled', 'message', 'cancelled by an operator',
                                                     'step', NULL, 'traceback', NULL) END,
       CASE WHEN g % 20 = 5 THEN md5('f' || (g - 1))::uuid::text END,
       CASE WHEN g % 20 = 5 THEN 'iteration' ELSE 'workflow' END,
       CASE WHEN g % 20 = 5 THEN md5('f' || (g - 1))::uuid::text END,
       CASE WHEN g % 20 = 5 THEN 4 END,
       CASE WHEN g % 20 = 5 THEN g % 7 END,
       CASE WHEN g % 20 = 5 THEN jsonb_build_object('sku', 'sku-' || g) END,
       CASE WHEN g % 10 = 3 THEN 'order-' || g END,
       0, 0, ts, ts + interval '1 second', ts + interval '3 seconds', ts + interval '3 seconds'
  FROM generate_series(1, {n}) AS g,
       LATERAL (SELECT now() - interval '30 days' + g * (interval '30 days' / {n})) AS x(ts)
"""

_FINISHED_STEPS = """
INSERT INTO {s}.step_executions
  (execution_id, seq, step_name, attempt, status, started_at, completed_at, duration_ms, input, output, logs,
   worker, is_compensation)
SELECT md5('f' || g)::uuid::text, k, 'step_' || k, 1,
       CASE WHEN k = 5 AND g % 20 = 17 THEN 'failed' ELSE 'completed' END,
       ts + k * interval '100 milliseconds', ts + k * interval '100 milliseconds' + interval '40 milliseconds', 40,
       jsonb_build_object('id', g, 'step', k), jsonb_build_object('id', g, 'step', k, 'ok', true), '[]'::jsonb,
       'worker-1@host', false
  FROM generate_series(2, {n}, 5) AS g, generate_series(1, 5) AS k,
       LATERAL (SELECT now() - interval '30 days' + g * (interval '30 days' / {n}) + interval '1 second') AS x(ts)
"""

_FINISHED_WAITS = """
INSERT INTO {s}.waits
  (execution_id, entered_seq, idx, step_name, kind, names, status, result, timeout_at, created_at, resolved_at)
SELECT md5('f' || g)::uuid::text, 3, 0, 'step_3', 'sleep', '[]'::jsonb, 'resolved', 'null'::jsonb,
       ts + interval '1 second', ts, ts + interval '1 second'
  FROM generate_series(1, {n}, 10) AS g,
       LATERAL (SELECT now() - interval '30 days' + g * (interval '30 days' / {n}) + interval '1 second') AS x(ts)
"""

# g % 10: 0-4 sleep, 5-7 event, 8 input, 9 a call of the child g + 1 (whose parent is g)
_WAITING = """
INSERT INTO {s}.workflow_executions
  (id, workflow, version, status, queue, priority, input, context, current_node, node_shape, attempt,
   entered_seq, seq, dispatched_at, deadline_at, parent_id, kind, idempotency_key, lost_leases, redispatches,
   created_at, started_at, updated_at)
SELECT md5('w' || g)::uuid::text,
       (ARRAY['process_order', 'send_report', 'sync_account', 'bill_customer', 'onboard_user'])[1 + g % 5],
       'v1', 'waiting', 'durable', 0,
       jsonb_build_object('id', g, 'items', jsonb_build_array('book'), 'customer', 'c' || g % 5000),
       jsonb_build_object('id', g, 'stage', 'waiting'),
       'wait_step', 'a1b2c3d4', 1, 5, 6, ts, CASE WHEN g % 3 = 0 THEN now() + interval '7 days' END,
       CASE WHEN g % 10 = 0 AND g > 1 THEN md5('w' || (g - 1))::uuid::text END,
       'workflow', CASE WHEN g % 10 = 3 THEN 'wait-' || g END, 0, 0,
       ts, ts + interval '1 second', ts + interval '2 seconds'
  FROM generate_series(1, {n}) AS g,
       LATERAL (SELECT now() - interval '2 days' + g * (interval '2 days' / {n})) AS x(ts)
"""

_WAITING_WAITS = """
INSERT INTO {s}.waits
  (execution_id, entered_seq, idx, step_name, kind, names, status, timeout_at, ref, input_type, prompt,
   created_at)
SELECT md5('w' || g)::uuid::text, 5, 0, 'wait_step',
       CASE WHEN g % 10 < 5 THEN 'sleep' WHEN g % 10 < 8 THEN 'event' WHEN g % 10 = 8 THEN 'input'
            ELSE 'child' END,
       CASE WHEN g % 10 < 5 THEN '[]'::jsonb WHEN g % 10 < 8 THEN '["payment_received"]'::jsonb
            WHEN g % 10 = 8 THEN '["approval"]'::jsonb ELSE '[]'::jsonb END,
       'pending',
       CASE WHEN g % 10 < 5 THEN now() + interval '1 day' + g * interval '1 minute'
            WHEN g % 10 < 8 AND g % 2 = 0 THEN now() + interval '3 days' END,
       CASE WHEN g % 10 = 9 THEN md5('w' || (g + 1))::uuid::text END,
       CASE WHEN g % 10 = 8 THEN 'approval' END,
       CASE WHEN g % 10 = 8 THEN 'Approve order ' || g || '?' END,
       now() - interval '1 hour'
  FROM generate_series(1, {n}) AS g
 WHERE g % 10 <> 9 OR g < {n}
"""

_WAITING_HISTORY = """
INSERT INTO {s}.step_executions
  (execution_id, seq, step_name, attempt, status, started_at, completed_at, duration_ms, input, output, worker,
   is_compensation)
SELECT e.id, k, 'step_' || k, 1, 'completed', e.started_at, e.started_at + interval '30 milliseconds', 30,
       e.input, e.context, 'worker-2@host', false
  FROM {s}.workflow_executions e, generate_series(1, 4) AS k
 WHERE e.status = 'waiting'
"""

_WAITING_EVENTS = """
INSERT INTO {s}.events (execution_id, kind, name, payload, status, created_at, consumed_at)
SELECT md5('w' || g)::uuid::text, 'event', 'order_placed', jsonb_build_object('order', g), 'consumed',
       now() - interval '2 hours', now() - interval '2 hours'
  FROM generate_series(1, {n}) AS g
 WHERE g % 10 BETWEEN 5 AND 7
"""

_SCHEDULES = """
INSERT INTO {s}.scheduled_workflows
  (name, workflow, cron, timezone, input, queue, enabled, origin, next_run_at, created_at, updated_at)
SELECT 'report-' || g, 'send_report', '0 3 * * *', 'UTC', jsonb_build_object('tenant', g), NULL, true, 'client',
       now() + interval '1 hour' + g * interval '1 minute', now() - interval '30 days', now() - interval '1 day'
  FROM generate_series(1, 200) AS g
"""


@dataclass(frozen=True)
class Filled:
    """What a fill wrote, and how long it took."""

    finished: int
    waiting: int
    rows: dict[str, int]
    seconds: float


def fill(conn: psycopg.Connection, schema: str, finished: int, waiting: int) -> Filled:
    """Fill the engine tables of ``schema`` (migrated, empty) on an autocommit connection."""
    began = time.monotonic()
    s = sql.Identifier(schema)
    conn.execute("SET synchronous_commit = off")  # a bulk load: nothing is lost but the fill itself
    conn.execute("SET maintenance_work_mem = '256MB'")
    rebuild = _drop_secondary(conn, schema)
    for query, n in ((_FINISHED, finished), (_FINISHED_STEPS, finished), (_FINISHED_WAITS, finished),
                     (_WAITING, waiting), (_WAITING_WAITS, waiting), (_WAITING_HISTORY, waiting),
                     (_WAITING_EVENTS, waiting)):
        if n:
            conn.execute(sql.SQL(query).format(s=s, n=sql.Literal(n)))
    conn.execute(sql.SQL(_SCHEDULES).format(s=s))
    for statement in rebuild:
        conn.execute(statement)
    for table in TABLES:
        conn.execute(sql.SQL("VACUUM ANALYZE {}.{}").format(s, sql.Identifier(table)))
    rows = {table: int(_one(conn, sql.SQL("SELECT count(*) FROM {}.{}").format(s, sql.Identifier(table))))
            for table in TABLES}
    return Filled(finished, waiting, rows, time.monotonic() - began)


def _drop_secondary(conn: psycopg.Connection, schema: str) -> list[sql.Composable]:
    """Drop the foreign keys, unique constraints and indexes (all but the primary keys) of the
    filled tables; returns the statements that create them again. A bulk load builds an index
    once at the end, much faster than row by row, and the constraints are checked then."""
    constraints = conn.execute(
        "SELECT c.conname, t.relname, pg_get_constraintdef(c.oid)"
        "  FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace"
        " WHERE n.nspname = %s AND t.relname = ANY(%s) AND c.contype IN ('f', 'u')"
        " ORDER BY c.contype DESC", (schema, list(TABLES))).fetchall()  # unique ones first, foreign keys last
    indexes = conn.execute(
        "SELECT c.relname, pg_get_indexdef(i.indexrelid)"
        "  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid"
        "  JOIN pg_namespace n ON n.oid = t.relnamespace"
        " WHERE n.nspname = %s AND t.relname = ANY(%s) AND NOT i.indisprimary"
        "   AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)",
        (schema, list(TABLES))).fetchall()
    s = sql.Identifier(schema)
    for name, table, _ in reversed(constraints):  # foreign keys first
        conn.execute(sql.SQL("ALTER TABLE {}.{} DROP CONSTRAINT {}").format(s, sql.Identifier(table),
                                                                            sql.Identifier(name)))
    for name, _ in indexes:
        conn.execute(sql.SQL("DROP INDEX {}.{}").format(s, sql.Identifier(name)))
    return [*(sql.SQL(definition) for _, definition in indexes),
            *(sql.SQL("ALTER TABLE {}.{} ADD CONSTRAINT {} {}").format(s, sql.Identifier(table), sql.Identifier(name),
                                                                     sql.SQL(definition))
              for name, table, definition in constraints)]


def _one(conn: psycopg.Connection, query: sql.Composed) -> object:
    row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]
