"""Listing executions on the real Postgres: filters by time and current step, keyset pages that
never overlap or skip (also while new executions start between pages), bad filters refused, and
at 200,000 executions every page read from an index, the deepest as fast as the first."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from celery import Celery

from bench.scale_fill import fill
from bench.scale_plans import Probe, Sample, plans
from durable_celery import Durable, ExecutionPage, InvalidInput
from durable_celery.queries import decode_cursor, encode_cursor
from durable_celery.state import executions
from tests.conftest import POSTGRES, Project

Factory = Callable[..., Project]


def _all_pages(durable: Durable, between: Callable[[], object] = lambda: None, **filters: object) -> list[str]:
    page = durable.page_executions(limit=40, **filters)  # type: ignore[arg-type]
    seen = [e.id for e in page.items]
    while page.next_cursor is not None:
        between()
        page = durable.page_executions(limit=40, cursor=page.next_cursor, **filters)  # type: ignore[arg-type]
        seen += [e.id for e in page.items]
    return seen


def test_pages_cover_every_execution_once_newest_first_while_new_ones_start(project_factory: Factory) -> None:
    p = project_factory()
    # Given 300 executions started in batches (each batch shares one created_at: ties by id)
    for _ in range(6):
        p.durable.start_many("noop", [{} for _ in range(50)])
    listed = [e.id for e in p.durable.list_executions(limit=1000)]
    assert len(listed) == 300
    # When every page of 40 is read, and 25 more executions start before each next page
    seen = _all_pages(p.durable, between=lambda: p.durable.start_many("noop", [{} for _ in range(25)]))
    # Then the pages hold the 300 once each, in the listing order, and none of the new ones
    assert seen == listed
    # And a cursor passed to list_executions reads on from there, as the next page does
    first = p.durable.page_executions(limit=120)
    assert first.next_cursor is not None
    assert [e.id for e in p.durable.list_executions(limit=40, cursor=first.next_cursor)] == [
        e.id for e in p.durable.page_executions(limit=40, cursor=first.next_cursor).items]
    # And the last page says there is no next one
    assert p.durable.page_executions(limit=1000) == ExecutionPage(p.durable.list_executions(limit=1000), None)


def test_executions_are_filtered_by_creation_time_current_step_workflow_and_status(project_factory: Factory) -> None:
    p = project_factory()
    # Given three batches started some milliseconds apart, of two workflows
    early = p.durable.start_many("noop", [{} for _ in range(30)])
    time.sleep(0.05)
    middle = p.durable.start_many("pipeline", [{"n": i} for i in range(20)])
    time.sleep(0.05)
    late = p.durable.start_many("noop", [{} for _ in range(10)])
    at = {e.id: e.created_at for e in p.durable.list_executions(limit=1000)}
    mid_time, late_time = at[middle[0]], at[late[0]]
    # When filtered by creation time: at or after the first bound, before the second
    assert set(_all_pages(p.durable, created_after=mid_time)) == {*middle, *late}
    assert set(_all_pages(p.durable, created_before=mid_time)) == set(early)
    assert set(_all_pages(p.durable, created_after=mid_time, created_before=late_time)) == set(middle)
    # And in another timezone, the same instant
    berlin = timezone(timedelta(hours=2))
    assert set(_all_pages(p.durable, created_after=late_time.astimezone(berlin))) == set(late)
    # And by the step they stand on, their workflow and status, combined
    assert set(_all_pages(p.durable, current_step="noop_0")) == {*early, *late}
    assert set(_all_pages(p.durable, current_step="noop_0", created_before=late_time, status="pending")) == set(early)
    assert _all_pages(p.durable, current_step="noop_0", workflow="pipeline") == []
    assert set(_all_pages(p.durable, workflow="pipeline", status="pending")) == set(middle)


def test_executions_are_found_by_the_first_characters_of_their_id_and_counted_by_chosen_statuses(
        project_factory: Factory) -> None:
    p = project_factory()
    ids = p.durable.start_many("noop", [{} for _ in range(20)])
    p.durable.cancel(ids[0])
    for target in ids[:3]:
        assert [e.id for e in p.durable.list_executions(id_prefix=target[:10])] == [target]
    assert {e.id for e in p.durable.page_executions(id_prefix=ids[5][:1], limit=100).items} == \
        {i for i in ids if i.startswith(ids[5][:1])}
    assert p.durable.count_by_status(["pending", "cancelled"]) == {"pending": 19, "cancelled": 1}
    assert p.durable.count_by_status(["running"]) == {"running": 0}
    assert p.durable.count_by_status()["pending"] == 19
    for bad, message in ((["done"], "unknown status 'done'"), ("pending", "a list of statuses"), ([None], "not None")):
        with pytest.raises(InvalidInput, match=message):
            p.durable.count_by_status(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("filters, message", [
    ({"id_prefix": "XYZ"}, "id_prefix must be 1 to 36 lower-case hex digits and dashes"),
    ({"id_prefix": "%"}, "id_prefix must be"),
    ({"created_after": datetime(2024, 1, 1)}, "created_after must be a timezone-aware datetime"),
    ({"created_before": "2024-01-01"}, "created_before must be a timezone-aware datetime"),
    ({"cursor": "not a cursor"}, "is not a cursor from page_executions"),
    ({"cursor": encode_cursor(datetime(2024, 1, 1, tzinfo=timezone.utc), "x")[:-3]}, "is not a cursor"),
    ({"cursor": 12}, "cursor must be a next_cursor string"),
    ({"current_step": ""}, "current_step must be a string of 1 to 255 characters"),
    ({"status": "finished"}, "unknown status 'finished'"),
    ({"limit": 0}, "limit must be an int from 1 to 1000"),
    ({"limit": 1001}, "limit must be an int from 1 to 1000"),
    ({"workflow": 3}, "workflow must be a Workflow or its name"),
])
def test_a_bad_filter_is_refused_before_the_database_is_touched(filters: dict[str, object], message: str) -> None:
    # An engine whose database does not exist: any query would fail differently
    durable = Durable(Celery("q", broker="memory://"),
                      database_url="postgresql+psycopg://postgres@127.0.0.1:5432/no_such_database_here")
    with pytest.raises(InvalidInput, match=message):
        durable.page_executions(**filters)  # type: ignore[arg-type]


def test_a_cursor_names_a_position_and_nothing_else() -> None:
    at = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=timezone.utc)
    cursor = encode_cursor(at, "0f0e-id")
    assert decode_cursor(cursor) == (at, "0f0e-id")
    assert cursor.isascii() and "=" not in cursor and "/" not in cursor


# -- at scale ------------------------------------------------------------------------------------

ROWS = 200_000


@pytest.mark.timeout(600)
def test_at_200k_executions_every_page_is_read_from_an_index_as_fast_deep_as_first(
        project_factory: Factory) -> None:
    p = project_factory()
    # Given 200,000 finished executions over 30 days and 2,000 waiting ones (bench.scale's fill)
    with psycopg.connect(POSTGRES.replace("+psycopg", ""), autocommit=True) as conn:
        fill(conn, p.prefix, ROWS, 2_000)
    durable = Durable(Celery("scale", broker="memory://"), database_url=POSTGRES, prefix=p.prefix)
    try:
        deep = _position(p, 150_000)
        week_ago = datetime.now(timezone.utc) - timedelta(days=7)
        probes = [
            Probe("first page", lambda c, s: executions.list_txn(c, workflow=None, status=None, queue=None,
                                                                 limit=51, offset=0)),
            Probe("page 3,000 by cursor", lambda c, s: executions.list_txn(
                c, workflow=None, status=None, queue=None, limit=51, offset=0, after=deep)),
            Probe("failed, by cursor", lambda c, s: executions.list_txn(
                c, workflow=None, status="failed", queue=None, limit=51, offset=0, after=deep)),
            Probe("a workflow's failed in a week", lambda c, s: executions.list_txn(
                c, workflow="send_report", status="failed", queue=None, limit=51, offset=0,
                created_after=week_ago)),
            Probe("a time range", lambda c, s: executions.list_txn(
                c, workflow=None, status=None, queue=None, limit=51, offset=0, created_after=week_ago,
                created_before=week_ago + timedelta(days=1))),
            Probe("waiting at a step", lambda c, s: executions.list_txn(
                c, workflow=None, status="waiting", queue=None, limit=51, offset=0, current_step="wait_step")),
        ]
        # When each page's query is explained (its custom and its generic plan)
        found = plans(durable, POSTGRES.replace("+psycopg", ""), Sample("", None, durable.clock.now()), probes)
        # Then none reads the table whole
        scans = {name: [plan.seq_scans for plan in ps if not plan.on_index] for name, ps in found.items()}
        assert {name: s for name, s in scans.items() if s} == {}, {n: [x.custom for x in ps] for n, ps in found.items()}
        assert all(len(ps) == 1 for ps in found.values())
        # And through the client, a page deep in the table takes about as long as the first
        cursor = encode_cursor(*deep)
        first_ms = _best_ms(lambda: durable.page_executions(limit=50))
        deep_ms = _best_ms(lambda: durable.page_executions(limit=50, cursor=cursor))
        page = durable.page_executions(limit=50, cursor=cursor)
        assert len(page.items) == 50 and page.items[0].created_at <= deep[0]
        print(f"\npage of 50 at {ROWS:,} rows: first {first_ms:.1f} ms, after row 150,000 {deep_ms:.1f} ms")
        assert deep_ms < 50 and first_ms < 50, (first_ms, deep_ms)
    finally:
        durable.db.dispose()


def _position(p: Project, offset: int) -> tuple[datetime, str]:
    [(created_at, execution_id)] = p.sql("SELECT created_at, id FROM {schema}.workflow_executions "
                                         "WHERE kind = 'workflow' ORDER BY created_at DESC, id OFFSET :n LIMIT 1",
                                         n=offset)
    return created_at, execution_id


def _best_ms(call: Callable[[], object], runs: int = 7) -> float:
    call()
    best = float("inf")
    for _ in range(runs):
        began = time.perf_counter()
        call()
        best = min(best, (time.perf_counter() - began) * 1000)
    return best

