"""The executions list of the dashboard at 1,000,000 executions: every view a user can ask for
by URL (the first page, a page deep down by its cursor, a status, a workflow over a time range,
an id prefix) answers in well under half a second, each read from an index (the rows are
written with set-based SQL, as bench/scale_fill.py does)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
from psycopg import sql

from durable_celery.dashboard import HOST_AUTH, Dashboard
from durable_celery.queries import encode_cursor
from tests.conftest import POSTGRES, Project
from tests.dashboard_support import DashboardClient

TOTAL = 1_000_000
WORKFLOWS = ("process_order", "send_report", "sync_account", "bill_customer", "onboard_user")

# over the last 30 days, one every 2.6 s: 5 workflows in turn; 94 % completed, 5 % failed,
# 1 % waiting; one in 20 is a foreach iteration of the one before it (not listed)
_FILL = """
INSERT INTO {s}.workflow_executions
  (id, workflow, version, status, queue, kind, parent_id, root_id, created_at, started_at, updated_at)
SELECT md5('d' || g)::uuid::text,
       (ARRAY['process_order', 'send_report', 'sync_account', 'bill_customer', 'onboard_user'])[1 + g % 5],
       'v1',
       CASE WHEN g % 100 < 94 THEN 'completed' WHEN g % 100 < 99 THEN 'failed' ELSE 'waiting' END,
       'durable',
       CASE WHEN g % 20 = 7 THEN 'iteration' ELSE 'workflow' END,
       CASE WHEN g % 20 = 7 THEN md5('d' || (g - 1))::uuid::text END,
       CASE WHEN g % 20 = 7 THEN md5('d' || (g - 1))::uuid::text END,
       ts, ts + interval '1 second', ts + interval '3 seconds'
  FROM generate_series(1, {n}) AS g,
       LATERAL (SELECT now() - interval '30 days' + g * (interval '30 days' / {n})) AS x(ts)
"""


def _rows(page: str) -> list[str]:
    return re.findall(r'<tr data-execution="([0-9a-f-]{36})"', page)


@pytest.mark.timeout(300)
def test_the_executions_list_answers_every_filter_in_under_half_a_second_at_a_million_executions(
        project_factory: Callable[..., Project]) -> None:
    project = project_factory("redis")
    schema = sql.Identifier(project.prefix)
    # Given 1,000,000 executions, their statistics up to date
    with psycopg.connect(POSTGRES.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(sql.SQL(_FILL).format(s=schema, n=sql.Literal(TOTAL)))
        conn.execute(sql.SQL("VACUUM ANALYZE {}.workflow_executions").format(schema))
        # a page in the middle of the table, by its cursor
        middle_at, middle_id = conn.execute(sql.SQL(
            "SELECT created_at, id FROM {}.workflow_executions WHERE kind = 'workflow' "
            "ORDER BY created_at DESC, id OFFSET 475000 LIMIT 1").format(schema)).fetchone()  # type: ignore[misc]
        # an id prefix that a handful of executions share
        prefix = conn.execute(sql.SQL(
            "SELECT left(id, 4) FROM {}.workflow_executions WHERE kind = 'workflow' "
            "ORDER BY created_at LIMIT 1").format(schema)).fetchone()[0]  # type: ignore[index]
        # Then the search by prefix reads the prefix index
        explained = "\n".join(row[0] for row in conn.execute(sql.SQL(
            "EXPLAIN SELECT * FROM {}.workflow_executions WHERE kind = 'workflow' AND id LIKE {} "
            "ORDER BY created_at DESC, id LIMIT 51").format(schema, sql.Literal(f"{prefix}%"))))
    assert "ix_workflow_executions_id_prefix" in explained, explained

    client = DashboardClient(Dashboard(project.durable, auth=HOST_AUTH))
    views = {
        "first page": {},
        "a deep page": {"cursor": encode_cursor(middle_at, middle_id)},
        "a status": {"status": "failed"},
        "a rare status, deep": {"status": "waiting", "cursor": encode_cursor(middle_at, middle_id)},
        "a workflow over a range": {"workflow": "send_report", "range": "7d"},
        "a workflow from / to": {"workflow": "sync_account", "from": "2000-01-01T00:00", "to": "2100-01-01T00:00"},
        "an id prefix": {"id": prefix},
    }
    client.get("/executions")  # the page open already (the workflow choices are read once a minute)
    timings: dict[str, float] = {}
    for name, query in views.items():
        # When each view is asked for (the best of three: the machine is shared)
        runs = []
        for _ in range(3):
            began = time.perf_counter()
            page = client.get("/executions", query)
            runs.append(time.perf_counter() - began)
        timings[name] = min(runs)
        # Then it lists a page of what it asked for
        assert page.status == 200, (name, page.text[-2000:])
        shown = _rows(page.text)
        assert shown, name
        if name == "an id prefix":
            assert all(execution_id.startswith(prefix) for execution_id in shown)
        elif name != "a rare status, deep":
            assert len(shown) == 50, (name, len(shown))
    assert max(timings.values()) < 0.5, {name: round(t * 1000) for name, t in timings.items()}

    # And the deep page's next link goes on from where that page ended
    deep = client.get("/executions", views["a deep page"])
    following = re.search(r'href="([^"]+)" rel="next"', deep.text)
    assert following is not None
    next_query = {k: v[0] for k, v in parse_qs(urlsplit(following.group(1).replace("&amp;", "&")).query).items()}
    later = client.get("/executions", next_query)
    assert _rows(later.text)[0] != _rows(deep.text)[0] and set(_rows(later.text)).isdisjoint(_rows(deep.text))

    # And the overview: its first read counts the whole table; the pages after it share that read
    # (kept twenty times as long as it took) and answer at once, with the active counts exact
    began = time.perf_counter()
    first = client.get("/")
    cold = time.perf_counter() - began
    began = time.perf_counter()
    again = client.get("/")
    shared = time.perf_counter() - began
    assert first.status == again.status == 200
    waiting = re.search(r'data-status="waiting">\s*<span class="count-n">(\d+)</span>', again.text)
    assert waiting is not None and int(waiting.group(1)) == sum(
        1 for g in range(1, TOTAL + 1) if g % 100 >= 99 and g % 20 != 7)
    assert shared < 0.2, {"overview, first": round(cold * 1000), "overview, shared": round(shared * 1000)}
    print(f"list views (ms): { {name: round(t * 1000) for name, t in timings.items()} }; "
          f"overview: first {cold * 1000:.0f} ms, shared {shared * 1000:.0f} ms")
