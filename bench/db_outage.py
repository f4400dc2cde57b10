"""The database going away under load (issue 16, fault 2): W executions of ``bench_noop`` (N
no-op steps, ``per_step``, default settings) on one worker (``-c 2``) and beat, on a private
PostgreSQL (``durable_celery.testing.services``) restarted with an immediate shutdown ``--at``
seconds into the run and kept down ``--down`` seconds. Prints how long after the database came
back the run completed, next to the same run undisturbed.

    python -m bench.db_outage                       # W=200, N=10, restart 1 s in, back at once
    python -m bench.db_outage --down 5 --broker redis://127.0.0.1:6379/9
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text

from bench.app import engine_env, make_engine
from bench.bench import start_executions
from bench.common import ROOT, delete_queues, start_worker
from durable_celery import DatabaseUnavailable, Durable
from durable_celery.testing.services import PrivatePostgres
from durable_celery.testing.workers import beat


def completed(durable: Durable) -> int:
    """Executions completed so far; -1 while the database is away."""
    try:
        with durable.db.connect() as conn:
            query = f'SELECT count(*) FROM "{durable.db.schema}".workflow_executions WHERE status = \'completed\''
            return int(conn.execute(text(query)).scalar_one())
    except DatabaseUnavailable:
        return -1


def steps_per_second(durable: Durable, since: float) -> list[int]:
    """Checkpoints in each second from ``since`` (a POSIX time) on."""
    query = (f'SELECT floor(extract(epoch from completed_at) - :since)::int AS s, count(*) '
             f'FROM "{durable.db.schema}".step_executions WHERE completed_at >= to_timestamp(:since) '
             "GROUP BY s ORDER BY s")
    with durable.db.connect() as conn:
        counts = dict(conn.execute(text(query), {"since": since}).all())
    return [counts.get(second, 0) for second in range(max(counts, default=-1) + 1)]


def run(workflows: int, steps: int, broker: str, at: float | None, down: float, timeout: float) -> dict[str, Any]:
    """One run, with the restart (``at`` seconds in) or undisturbed (``at`` None)."""
    with PrivatePostgres() as pg:
        prefix = f"bench_{uuid.uuid4().hex[:8]}"
        queue = f"bench-pg-{prefix}"
        app, durable = make_engine(broker, pg.url, prefix, queue, steps, "per_step", 0.5)
        durable.ensure_schema()
        env = engine_env(broker, pg.url, prefix, queue, steps, "per_step", 0.5)
        ticker = beat("bench.app", env=env, cwd=str(ROOT)).start()
        try:
            with start_worker([queue], env, 2) as worker:
                began = time.monotonic()
                start_executions(durable, workflows)
                back, back_wall = began, time.time()
                if at is not None:
                    time.sleep(max(0.0, at - (time.monotonic() - began)))
                    back = pg.restart(down_for=down)
                    back_wall = time.time()
                while completed(durable) < workflows:
                    if time.monotonic() - began > timeout:
                        raise SystemExit(f"not done after {timeout}s: {completed(durable)} of {workflows}")
                    time.sleep(0.05)
                done = time.monotonic()
                logs = worker.log() + ticker.log()
        finally:
            ticker.stop()
            durable.db.dispose()
            delete_queues(app, queue, f"{queue}-default")
        rates = steps_per_second(durable, back_wall)
    counts = {what: logs.count(marker) for what, marker in LOG_MARKERS.items()}
    return {"total": done - began, "after_back": done - back, "rates": rates, "log": counts}


#: what the worker and beat logged about the outage, counted
LOG_MARKERS = {"messages handed back": "Retry in", "checkpoints retried": "trying again for up to",
               "keepers failed": "lease heartbeat failed", "leases recovered by the tick": "lost its worker",
               "step tasks failed": "raised unexpected"}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workflows", type=int, default=200)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/9")
    parser.add_argument("--at", type=float, default=1.0, help="seconds into the run the database restarts")
    parser.add_argument("--down", type=float, default=0.0, help="seconds it stays down")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    calm = run(args.workflows, args.steps, args.broker, None, 0.0, args.timeout)
    print(f"undisturbed: {calm['total']:.2f}s", flush=True)
    hit = run(args.workflows, args.steps, args.broker, args.at, args.down, args.timeout)
    print(f"restarted {args.at:g}s in, down {args.down:g}s: {hit['total']:.2f}s in all, done "
          f"{hit['after_back']:.2f}s after the database was back (undisturbed, the run had "
          f"{max(0.0, calm['total'] - args.at):.2f}s left at {args.at:g}s)")
    print(f"  checkpoints per second from the database's return: {hit['rates']}")
    print(f"  undisturbed, per second from {args.at:g}s in: {calm['rates'][int(args.at):]}")
    print("  " + ", ".join(f"{what}: {n}" for what, n in hit["log"].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
