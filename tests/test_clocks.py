"""Clocks and beat: timers of every kind that fall due while beat is down fire once it is
back, each exactly once; and workers whose clocks differ by a few seconds (within the
documented tolerance) steal no lease early and fire no timer twice."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.conftest import Project

Factory = Callable[..., Project]


def attempts(p: Project, execution_id: str) -> list[tuple[str, int, str]]:
    rows = p.sql("SELECT step_name, attempt, status FROM {schema}.step_executions WHERE execution_id = :id "
                 "ORDER BY seq", id=execution_id)
    return [tuple(r) for r in rows]


def row(p: Project, execution_id: str) -> Any:
    return p.sql("SELECT status, seq, attempt, ready_at FROM {schema}.workflow_executions WHERE id = :id",
                 id=execution_id)[0]


def poll(what: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, message
        time.sleep(0.05)


def test_timers_timeouts_and_retries_due_while_beat_is_down_each_fire_once_when_it_is_back(
        project_factory: Factory) -> None:
    # A retry's 4 s backoff is longer than max_countdown: no countdown message, the tick's alone
    p = project_factory("redis", max_countdown=1)
    p.worker()
    beat = p.beat()
    # Given a sleep, a wait with a timeout and a retry backoff, each due in 4 s
    nap = p.durable.start("beat_nap", {"seconds": 4})
    patience = p.durable.start("beat_patience", {"seconds": 4})
    backoff = p.durable.start("beat_backoff", {})
    poll(lambda: row(p, nap)[0] == "waiting" and row(p, patience)[0] == "waiting"
         and attempts(p, backoff) == [("fail_once", 1, "failed")], 20, "the workflows never reached their timers")
    # When beat is stopped, for longer than it takes them all to fall due (4 s) and then some
    beat.stop()
    down_at = time.monotonic()
    time.sleep(12)
    # Then nothing fired while it was down: no beat, no timer (no message waits in the broker)
    assert row(p, nap)[0] == "waiting" and row(p, patience)[0] == "waiting"
    assert attempts(p, backoff) == [("fail_once", 1, "failed")]
    assert p.effects(nap) == {"nap_step": 1} and p.effects(patience) == {"wait_in_vain": 1}
    assert p.effects(backoff) == {"fail_once": 1}
    # When beat is back
    p.beat()
    back_at = time.monotonic()
    done = {name: p.wait(execution_id, timeout=20) for name, execution_id in
            (("nap", nap), ("patience", patience), ("backoff", backoff))}
    caught_up = time.monotonic() - back_at
    # Then each fired, within seconds, and exactly once: the step that waited ran again once (to
    # take its recorded timer), the next step once, the retry once; one attempt row each
    assert all(e.status == "completed" for e in done.values()), {k: e.status for k, e in done.items()}
    assert caught_up < 6, caught_up
    assert done["nap"].context == {"seconds": 4, "woke": True}
    assert done["patience"].context == {"seconds": 4, "got": "timed out"}
    assert done["backoff"].context == {"attempt": 2}
    time.sleep(2)  # and nothing more arrives late
    assert p.effects(nap) == {"nap_step": 2, "nap_done": 1}
    assert p.effects(patience) == {"wait_in_vain": 2}
    assert p.effects(backoff) == {"fail_once": 2}
    assert attempts(p, nap) == [("nap_step", 1, "completed"), ("nap_done", 1, "completed")]
    assert attempts(p, patience) == [("wait_in_vain", 1, "completed")]
    assert attempts(p, backoff) == [("fail_once", 1, "failed"), ("fail_once", 2, "completed")]
    waits = p.sql("SELECT execution_id, status FROM {schema}.waits WHERE execution_id IN (:a, :b)", a=nap, b=patience)
    assert sorted(status for _, status in waits) == ["resolved", "timed_out"]
    # Each execution's seq moved once per write: suspend, wake, checkpoint(s); nothing doubled
    assert row(p, nap)[1] == 4 and row(p, patience)[1] == 3 and row(p, backoff)[1] == 2
    assert time.monotonic() - down_at > 12


def test_workers_with_skewed_clocks_steal_no_lease_and_hand_leases_over_safely(project_factory: Factory) -> None:
    # stale_lock_timeout 6 s, heartbeat 1 s: a live lease is renewed 5 s before it expires, so
    # beat may run up to 5 s ahead of a worker. handoff_ttl is 6 s, so a handed lease's clock
    # tolerance (beat ahead of the receiving worker) is 6/2 - 1.5 * 0.75 = 1.875 s.
    p = project_factory("redis", stale_lock_timeout=6, heartbeat_interval=1)
    skew = 1.5
    beat = p.beat()  # beat on the true clock
    workers = [p.worker(concurrency=2, env={"DT_CLOCK_SKEW": str(-skew)}),  # a worker 1.5 s behind
               p.worker(concurrency=2, env={"DT_CLOCK_SKEW": str(skew)})]  # and one 1.5 s ahead: 3 s apart
    # Given steps longer than the lease, and quick steps whose leases are handed from worker to worker
    marathons = [p.durable.start("skew_marathon", {"seconds": 9}) for _ in range(2)]
    pipelines = [p.durable.start("pipeline", {}) for _ in range(20)]
    executions = {e: p.wait(e, timeout=60) for e in [*marathons, *pipelines]}
    assert all(e.status == "completed" for e in executions.values()), {k: e.status for k, e in executions.items()}
    # Then no lease was taken from a live worker: each long step ran once, on one attempt
    for e in marathons:
        assert p.effects(e) == {"run_long": 1, "run_short": 1}
        assert attempts(p, e) == [("run_long", 1, "completed"), ("run_short", 1, "completed")]
    # And every handed lease was honoured: each step ran once
    for e in pipelines:
        assert p.effects(e) == {"first": 1, "second": 1, "third": 1}
    assert "lost its worker" not in beat.log()
    assert all("lost its lease" not in w.log() for w in workers)
    assert p.sql("SELECT count(*) FROM {schema}.step_executions WHERE status <> 'completed'")[0][0] == 0


def test_a_timer_recorded_by_a_worker_ahead_fires_once_on_a_worker_behind(project_factory: Factory) -> None:
    p = project_factory("redis")
    p.beat()  # beat on the true clock
    ahead = p.worker(concurrency=2, env={"DT_CLOCK_SKEW": "1.5"})
    # Given sleeps recorded by a worker whose clock is 1.5 s ahead (their due times are 1.5 s late)
    # (long enough for the next worker to be up before they fall due)
    naps = [p.durable.start("beat_nap", {"seconds": 12}) for _ in range(3)]
    for e in naps:
        p.wait(e, statuses={"waiting"}, timeout=20)
    # When the wake-ups go to a worker whose clock is 1.5 s behind (3 s behind the one that wrote them)
    ahead.stop()
    behind = p.worker(concurrency=2, env={"DT_CLOCK_SKEW": "-1.5"})
    done = [p.wait(e, timeout=40) for e in naps]
    # Then each timer fired once: the sleeping step ran once to sleep and once to wake, not again
    # and again until the late clock caught up
    assert all(e.status == "completed" for e in done)
    for e in naps:
        assert p.effects(e) == {"nap_step": 2, "nap_done": 1}, p.effects(e)
        assert row(p, e)[1] == 4  # suspend, wake, two checkpoints
    # Because the wake's message was early by the late worker's clock (the tick woke it at its own
    # time, as ready_at): the claim refused it and published it again for when it is due there
    assert "'early'" in behind.log()
    for timeout_at, resolved_at in p.sql("SELECT timeout_at, resolved_at FROM {schema}.waits"):
        assert resolved_at >= timeout_at  # by the clock of the worker that took the wake
