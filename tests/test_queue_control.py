"""Controlled queues (docs/queues.md), on real workers: a concurrency limit and a per-key limit
hold cluster-wide while the slots stay busy; a pause stops every start at once and loses
nothing; a rate limit holds in every sliding window; a dead worker's slot comes back."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from durable_celery import QueueNotFound
from tests.conftest import Project
from tests.test_composition import max_overlap

Factory = Callable[..., Project]


def bodies(p: Project, ids: list[str]) -> list[tuple[str, datetime, datetime]]:
    """(execution, start, end) of each step body's last run, from the notes the step recorded in
    Postgres. The last run: a body cut off by a killed worker (a start, no end) ran again later,
    and its first start must not stretch the interval of the run that completed."""
    rows = p.sql("SELECT execution_id, max(at) FILTER (WHERE note = 'start'), max(at) FILTER (WHERE note = 'end') "
                 "FROM {schema}.test_effects WHERE execution_id = ANY(:ids) GROUP BY execution_id", ids=ids)
    return [(r[0], r[1], r[2]) for r in rows]


def utilisation(intervals: list[tuple[datetime, datetime]], slots: int) -> float:
    """Busy slot-time over what ``slots`` slots allow from the first start to the last end."""
    span = (max(e for _, e in intervals) - min(s for s, _ in intervals)).total_seconds()
    busy = sum((e - s).total_seconds() for s, e in intervals)
    return busy / (slots * span)


def wait_all(p: Project, ids: list[str], timeout: float) -> None:
    """Until every execution has ended (one light query every 0.2 s: the machine is the workers'),
    then each must have completed."""
    deadline = time.monotonic() + timeout
    final = ("completed", "failed", "cancelled", "compensated", "compensation_failed")
    while p.sql("SELECT count(*) FROM {schema}.workflow_executions WHERE id = ANY(:ids) AND status = ANY(:final)",
                ids=ids, final=list(final))[0][0] < len(ids):
        assert time.monotonic() < deadline, f"not all {len(ids)} executions ended in {timeout}s"
        time.sleep(0.2)
    for execution_id in ids:
        execution = p.durable.get_execution(execution_id)
        assert execution.status == "completed", execution.error


def test_a_queue_limit_holds_across_all_workers_and_keeps_its_slots_busy(project_factory: Factory) -> None:
    # Given a queue limited to 3 and 4 workers of 2 processes each (8 slots of Celery's own)
    p = project_factory("redis", queue_limits={"concurrency": 3})
    for _ in range(4):
        p.worker(concurrency=2)
    p.beat()
    # When a burst of 200 one-step workflows (0.2 s each) is started at once
    ids = [p.durable.start("queue_burst", {"seconds": 0.2}) for _ in range(200)]
    time.sleep(1.0)
    stats = p.durable.queue_stats(p.queue)
    wait_all(p, ids, timeout=90)
    # Then while it ran, the stats showed the limit full and the rest waiting
    assert stats.concurrency == 3 and stats.running <= 3 and stats.waiting > 0 and not stats.paused, stats
    # And at no instant did more than 3 step bodies overlap, each body ran once
    runs = bodies(p, ids)
    assert len(runs) == 200
    intervals = [(s, e) for _, s, e in runs]
    assert max_overlap(intervals) == 3
    # And the 3 slots were kept busy: a freed slot starts the next step at once
    used = utilisation(intervals, 3)
    print(f"\nqueue limited to 3: {used:.1%} of what 3 slots allow (200 steps of 0.2 s)")
    # Target 80%: measured 87.8% on a quiet 2-core machine, 80.7% with another suite running (the freeing task runs the next
    # waiting step itself). The bound leaves room for a CI run with other test files beside it,
    # and still fails a hand-over left to the tick (a 0.5 s tick after each 0.2 s step would keep
    # the slots under 40% busy).
    assert used >= 0.6, f"the queue ran at {used:.1%} of its 3 slots"
    assert p.durable.queue_stats(p.queue).running == 0


def test_a_per_key_limit_holds_per_tenant_within_the_queue_limit(project_factory: Factory) -> None:
    # Given a queue of 2 slots, at most one step per tenant at once
    p = project_factory("redis", queue_limits={"concurrency": 2, "per_key": {"key": "tenant", "concurrency": 1}})
    for _ in range(3):
        p.worker(concurrency=2)
    p.beat()
    # When 3 tenants start 20 workflows each, interleaved
    ids_by_tenant: dict[str, list[str]] = {t: [] for t in ("acme", "globex", "initech")}
    for _ in range(20):
        for tenant, ids in ids_by_tenant.items():
            ids.append(p.durable.start("queue_burst", {"seconds": 0.2, "tenant": tenant}))
    every = [i for ids in ids_by_tenant.values() for i in ids]
    wait_all(p, every, timeout=60)
    # Then no tenant ever had two steps at once, and the queue never more than 2
    for tenant, ids in ids_by_tenant.items():
        assert max_overlap([(s, e) for _, s, e in bodies(p, ids)]) == 1, tenant
    intervals = [(s, e) for _, s, e in bodies(p, every)]
    assert len(intervals) == 60 and max_overlap(intervals) == 2
    used = utilisation(intervals, 2)
    print(f"\nper-key limit 1 in a queue of 2: {used:.1%} of what 2 slots allow (60 steps of 0.2 s, 3 tenants)")
    assert used >= 0.6, f"the queue ran at {used:.1%} of its 2 slots"  # measured 88.8% (84.0% loaded), as above


def test_a_paused_queue_starts_nothing_anywhere_and_resume_runs_what_waited(project_factory: Factory) -> None:
    # Given a controlled queue without a limit, two workers and a burst of 0.3 s steps
    p = project_factory("redis", queue_limits={})
    p.worker(concurrency=2)
    p.worker(concurrency=2)
    p.beat()
    ids = [p.durable.start("queue_burst", {"seconds": 0.3}) for _ in range(60)]
    time.sleep(1.0)
    # When the queue is paused mid-burst
    p.durable.pause_queue(p.queue)
    paused_at = datetime.now(timezone.utc)
    time.sleep(2.5)  # every claimed step has ended; the tick has run several times
    stats = p.durable.queue_stats(p.queue)
    # Then no step of the queue was claimed after pause_queue returned, and none runs now
    claims = p.sql("SELECT max(started_at), count(*) FROM {schema}.step_executions")[0]
    assert claims[0] <= paused_at, (claims, paused_at)
    assert 0 < claims[1] < 60
    assert stats.paused and stats.running == 0 and stats.waiting + stats.runnable > 0, stats
    assert p.sql("SELECT count(*) FROM {schema}.step_executions")[0][0] == claims[1]
    # And after resume every execution completes, each step body having run once
    p.durable.resume_queue(p.queue)
    wait_all(p, ids, timeout=60)
    assert len(bodies(p, ids)) == 60
    assert not p.durable.queue_stats(p.queue).paused


def test_a_rate_limit_holds_in_every_sliding_window(project_factory: Factory) -> None:
    # Given a queue limited to 5 starts per second (cluster-wide; Celery's rate_limit is per worker)
    p = project_factory("redis", queue_limits={"rate": "5/s"})
    p.worker(concurrency=2)
    p.worker(concurrency=2)
    p.beat()
    # When 25 instant workflows are started at once
    began = time.monotonic()
    ids = [p.durable.start("queue_burst", {"seconds": 0}) for _ in range(25)]
    wait_all(p, ids, timeout=60)
    took = time.monotonic() - began
    # Then in no window of one second did more than 5 start
    starts = sorted(r[0] for r in p.sql("SELECT started_at FROM {schema}.step_executions"))
    assert len(starts) == 25
    busiest = max(sum(1 for s in starts[i:] if s - first < timedelta(seconds=1)) for i, first in enumerate(starts))
    print(f"\nrate 5/s: 25 starts in {took:.1f} s, at most {busiest} in any 1 s window")
    assert busiest <= 5
    assert took >= 4.0  # 25 starts at 5 per second take at least 4 s after the first five
    stats = p.durable.queue_stats(p.queue)
    assert stats.rate == "5/s" and stats.rate_used is not None and stats.rate_used <= 5


def test_a_dead_workers_slot_comes_back_when_its_lease_expires(project_factory: Factory) -> None:
    # Given a queue of one slot, and a worker that dies while its step holds the slot
    p = project_factory("redis", queue_limits={"concurrency": 1})
    doomed = p.worker(concurrency=1)
    p.beat()
    ids = [p.durable.start("queue_burst", {"seconds": 1.5}) for _ in range(3)]
    deadline = time.monotonic() + 20
    while p.durable.queue_stats(p.queue).running == 0:
        assert time.monotonic() < deadline, "no step started"
        time.sleep(0.05)
    doomed.kill()
    # When another worker comes up
    p.worker(concurrency=2)
    # Then the slot comes back with the expired lease, and all three complete, never two at once
    wait_all(p, ids, timeout=60)
    runs = bodies(p, ids)
    assert max_overlap([(s, e) for _, s, e in runs if e is not None]) == 1
    assert p.durable.queue_stats(p.queue).running == 0


def test_only_controlled_queues_can_be_paused_and_unknown_queues_are_refused(project_factory: Factory) -> None:
    p = project_factory("redis")
    with pytest.raises(QueueNotFound, match="queues="):
        p.durable.pause_queue(p.queue)
    with pytest.raises(QueueNotFound, match="nope"):
        p.durable.queue_stats("nope")
    stats: Any = p.durable.queue_stats(p.queue)
    assert not stats.controlled and stats.concurrency is None and stats.running == 0
