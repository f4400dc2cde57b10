"""PostgreSQL going away under real workers and beat (docs/reliability.md, "When PostgreSQL goes
away"): restarted mid-run, or kept down for 30 s while steps run. Every workflow completes, each
step is checkpointed once, no step whose checkpoint committed runs again, no worker dies, no
lease is taken from a live worker, and client calls say clearly that the database is away.

The steps record each run of their body in a file (``tests/proj/wf_outage.py``), since the
database they would record it in is the one these tests take away."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from durable_celery import DatabaseUnavailable
from durable_celery.runtime import commit
from durable_celery.testing.services import PrivatePostgres
from tests.conftest import Project

Factory = Callable[..., Project]
STEPS = ("o1", "o2", "o3", "o4", "o5")


def runs(effects: Path) -> dict[tuple[str, str], list[datetime]]:
    """When each (execution, step) body started, from the steps' own log."""
    found: dict[tuple[str, str], list[datetime]] = {}
    for line in effects.read_text().splitlines():
        execution_id, step, _pid, at = line.split(" ")
        found.setdefault((execution_id, step), []).append(datetime.fromisoformat(at))
    return found


def checkpoints(p: Project) -> dict[tuple[str, str], list[datetime]]:
    """When each completed attempt was checkpointed, by (execution, step)."""
    rows = p.sql("SELECT execution_id, step_name, completed_at FROM {schema}.step_executions "
                 "WHERE status = 'completed'")
    found: dict[tuple[str, str], list[datetime]] = {}
    for execution_id, step, completed_at in rows:
        found.setdefault((execution_id, step), []).append(completed_at)
    return found


def wait_all_final(p: Project, ids: list[str], timeout: float) -> float:
    """Wait until every execution ended; returns the monotonic time they had. The test's own
    client rides out what is left of the outage: a call that finds the database away is tried again."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            ended = p.sql("SELECT count(*) FROM {schema}.workflow_executions WHERE id = ANY(:ids) "
                          "AND status IN ('completed', 'failed', 'cancelled')", ids=ids)[0][0]
        except DatabaseUnavailable:
            ended = -1
        if ended == len(ids):
            return time.monotonic()
        if time.monotonic() > deadline:
            logs = "\n".join(proc.log()[-4000:] for proc in p.processes)
            raise AssertionError(f"{ended} of {len(ids)} executions ended after {timeout}s\n{logs}")
        time.sleep(0.05)


def outage_log(p: Project) -> str:
    """What the workers did about the outage, counted from their logs (for the test's output)."""
    logs = "".join(proc.log() for proc in p.processes)
    return (f"{logs.count('Retry in')} messages handed back to the broker, "
            f"{logs.count('trying again for up to')} checkpoints retried ({logs.count(': done after')} done), "
            f"{logs.count('lease heartbeat failed')} keepers failed, {logs.count('lost its worker')} leases recovered")


def pool_pids(main_pid: int) -> set[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(main_pid)], capture_output=True, text=True).stdout
    return {int(pid) for pid in out.split()}


def assert_each_step_committed_once_and_never_run_after(p: Project, ids: list[str], effects: Path) -> int:
    """Every execution completed, each step has exactly one completed checkpoint, and no step
    body started after its checkpoint committed. Returns how many bodies ran more than once
    (each re-run is one whose earlier run never committed)."""
    statuses = p.sql("SELECT status, count(*) FROM {schema}.workflow_executions WHERE id = ANY(:ids) "
                     "GROUP BY status", ids=ids)
    assert dict(statuses) == {"completed": len(ids)}
    done = checkpoints(p)
    ran = runs(effects)
    assert set(done) == {(e, s) for e in ids for s in STEPS}
    assert {key: len(at) for key, at in done.items() if len(at) != 1} == {}
    ran_after = {key: [a for a in ran[key] if a > done[key][0]] for key in done}
    assert {key: after for key, after in ran_after.items() if after} == {}
    return sum(len(at) - 1 for at in ran.values())


# down_for=0: back as soon as it has recovered (a fraction of a second here); 2: a slower restart
@pytest.mark.parametrize("down_for", [0, 2])
def test_postgres_restarted_mid_run_completes_every_workflow_and_runs_no_committed_step_again(
        private_postgres: PrivatePostgres, project_factory: Factory, tmp_path: Path, down_for: float) -> None:
    p = project_factory("redis", database_url=private_postgres.url)
    effects = tmp_path / "effects.log"
    p.beat()
    p.worker()
    # Given a run of 40 workflows of 5 short steps on one worker (-c 2)
    ids = [p.durable.start("outage", {"effects": str(effects), "sleep": 0.05}) for _ in range(40)]
    time.sleep(1)
    # When PostgreSQL crashes (immediate shutdown) 1 s into the run and comes straight back
    stopped = datetime.now(timezone.utc)
    back = private_postgres.restart(down_for=down_for)
    back_at = datetime.now(timezone.utc)
    done = wait_all_final(p, ids, timeout=60)
    # Then every workflow completes, each step checkpointed once, no committed step run again
    reruns = assert_each_step_committed_once_and_never_run_after(p, ids, effects)
    [(first, before)] = p.sql("SELECT min(completed_at), count(*) FROM {schema}.step_executions "
                              "WHERE completed_at < :at", at=stopped)
    [(first_after, after)] = p.sql("SELECT min(completed_at), count(*) FROM {schema}.step_executions "
                                   "WHERE completed_at > :at", at=back_at)
    print(f"\nrestart: {before} steps done before the crash ({before / (stopped - first).total_seconds():.0f}/s), "
          f"down {(back_at - stopped).total_seconds():.2f}s; first checkpoint "
          f"{(first_after - back_at).total_seconds():.2f}s after the database was back, all done "
          f"{done - back:.2f}s after ({after / (done - back):.0f} steps/s); {reruns} step bodies re-run "
          f"(none after its commit); {outage_log(p)}")
    # And the run went on at once: well within the 59 s the outbox's back-off took before
    assert done - back < 30


def test_postgres_down_for_30s_while_steps_run_kills_no_worker_and_takes_no_lease_from_a_live_one(
        private_postgres: PrivatePostgres, project_factory: Factory, tmp_path: Path) -> None:
    p = project_factory("redis", database_url=private_postgres.url)
    effects = tmp_path / "effects.log"
    beat = p.beat()
    worker = p.worker(concurrency=4)
    pool = pool_pids(worker.pid)
    assert len(pool) == 4
    # Given 8 workflows of 5 one-second steps, with steps running on every slot
    ids = [p.durable.start("outage", {"effects": str(effects), "sleep": 1.0}) for _ in range(8)]
    deadline = time.monotonic() + 20
    while not (effects.exists() and len(effects.read_text().splitlines()) >= 6):
        assert time.monotonic() < deadline, "the steps never started"
        time.sleep(0.05)
    # When PostgreSQL stops (immediate shutdown) and stays down for 30 s, far longer than a lease (3 s)
    private_postgres.stop()
    time.sleep(30)
    private_postgres.start()
    back = time.monotonic()
    done = wait_all_final(p, ids, timeout=45)
    # Then every workflow completes, each step checkpointed once
    reruns = assert_each_step_committed_once_and_never_run_after(p, ids, effects)
    print(f"\n30 s outage: all done {done - back:.2f}s after the database was back; {reruns} step bodies re-run; "
          f"{outage_log(p)}")
    # And no lease was taken from a live worker: no step body ran twice, the tick recovered no lease
    assert reruns == 0
    assert "lost its worker" not in beat.log()
    # And no worker process died: the same main process and pool children
    assert worker.alive() and beat.alive()
    assert pool_pids(worker.pid) == pool


def test_client_calls_raise_database_unavailable_while_postgres_is_down_and_work_again_after(
        private_postgres: PrivatePostgres, project_factory: Factory, tmp_path: Path) -> None:
    # A password in the URL (trust auth ignores it) must not show in any message
    url = private_postgres.url.replace("postgres@", "postgres:s3cret@")
    p = project_factory("redis", database_url=url)
    durable = p.durable
    existing = durable.start("outage", {"effects": str(tmp_path / "effects.log")})  # no worker: it waits
    calls: dict[str, Callable[[], Any]] = {
        "start": lambda: durable.start("outage", {"effects": "x"}),
        "get_execution": lambda: durable.get_execution(existing),
        "list_executions": lambda: durable.list_executions(),
        "send_event": lambda: durable.send_event(existing, "nudge"),
        "cancel": lambda: durable.cancel(existing),
    }
    # When the database is down
    private_postgres.stop()
    for name, call in calls.items():
        # Then each call raises DatabaseUnavailable, naming the database without its password
        with pytest.raises(DatabaseUnavailable) as caught:
            call()
        error = caught.value
        assert isinstance(error.__cause__, OperationalError), name
        assert f"127.0.0.1:{private_postgres.port}/postgres" in str(error) and "s3cret" not in str(error), name
    # And once it is back, every call works at its first try: no dead pooled connection is handed out
    private_postgres.start()
    assert durable.get_execution(existing).status == "pending"
    assert durable.start("outage", {"effects": "x"})
    assert existing in [e.id for e in durable.list_executions(workflow="outage")]
    durable.send_event(existing, "nudge")
    durable.cancel(existing)
    assert durable.get_execution(existing).status == "cancelled"
    # Even after a restart no call saw: the connections it closed are refused at checkout
    private_postgres.restart()
    assert durable.get_execution(existing).status == "cancelled"
    with durable.db.single() as conn, durable.db.begin() as other:
        assert conn.exec_driver_sql("SELECT 1").scalar() == other.exec_driver_sql("SELECT 1").scalar() == 1


def test_messages_whose_claim_finds_the_database_away_are_handed_back_to_the_broker_not_dropped(
        private_postgres: PrivatePostgres, project_factory: Factory, tmp_path: Path) -> None:
    p = project_factory("redis", database_url=private_postgres.url)
    effects = tmp_path / "effects.log"
    p.beat()
    # Given six workflows started while no worker runs: their messages wait in the broker
    ids = [p.durable.start("outage", {"effects": str(effects)}) for _ in range(6)]
    # When the database goes away, and a worker starts and takes the messages, too late to trust
    # the leases they carry (half of 3 s): each must claim, and its claim finds no database
    private_postgres.stop()
    time.sleep(1.5)
    worker = p.worker()
    deadline = time.monotonic() + 20
    while worker.log().count("Retry in") < len(ids):
        assert time.monotonic() < deadline, worker.log()[-4000:]
        time.sleep(0.1)
    private_postgres.start()
    back = time.monotonic()
    # Then the messages came back from the broker until the database answered, and every workflow ran
    done = wait_all_final(p, ids, timeout=30)
    reruns = assert_each_step_committed_once_and_never_run_after(p, ids, effects)
    print(f"\nclaims during the outage: all done {done - back:.2f}s after the database was back; {outage_log(p)}")
    assert reruns == 0


def test_a_checkpoint_whose_commit_reached_the_database_but_whose_answer_was_lost_goes_on(
        project_factory: Factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Celery's eager mode: the steps run in this process, where the write can be made to lose its answer
    p = project_factory("redis")
    p.app.conf.task_always_eager = True
    effects = tmp_path / "effects.log"
    write_checkpoint = commit.write_checkpoint
    lost: list[int] = []

    def answer_lost(db: Any, machine: Any, snap: Any, token: str, cp: Any, now: Any, **options: Any) -> Any:
        written = write_checkpoint(db, machine, snap, token, cp, now, **options)
        if cp.attempt is not None and cp.attempt["step_name"] == "o3" and not lost:
            lost.append(snap.seq)
            raise DatabaseUnavailable(db.safe_url, "consuming input failed: server closed the connection unexpectedly")
        return written

    monkeypatch.setattr(commit, "write_checkpoint", answer_lost)
    # Given a checkpoint of o3 that commits, but whose connection breaks before its answer arrives
    execution_id = p.durable.start("outage", {"effects": str(effects)})
    # Then the next try finds it committed, and the workflow goes on at once: no step lost, none run twice
    assert lost == [2]
    assert p.durable.get_execution(execution_id).status == "completed"
    assert {step: len(at) for (_, step), at in checkpoints(p).items()} == dict.fromkeys(STEPS, 1)
    assert {step: len(at) for (_, step), at in runs(effects).items()} == dict.fromkeys(STEPS, 1)
