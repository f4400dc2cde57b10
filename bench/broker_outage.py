"""The broker going away under load (issue 16, fault 1): W executions of ``bench_noop`` (N
no-op steps, ``per_step``, default settings) on one worker (``-c 2``) and beat, on a private
Redis (nothing on disk) or RabbitMQ (``durable_celery.testing.services``) killed ``--at``
seconds into the run and kept down ``--down`` seconds. Prints how long after the broker came
back the run completed, the longest wait between two steps of one execution, and whether the
worker lived through it, next to the same run undisturbed.

    python -m bench.broker_outage                    # W=200, N=10, Redis killed 1 s in, back 1 s later
    python -m bench.broker_outage --rabbitmq --down 0.5
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
from bench.common import ROOT, Postgres, drop_schemas, ensure_database, start_worker
from durable_celery import Durable
from durable_celery.testing.services import PrivateRabbitMQ, PrivateRedis, PrivateServer
from durable_celery.testing.workers import beat


def scalar(durable: Durable, query: str) -> Any:
    with durable.db.connect() as conn:
        return conn.execute(text(query.replace("{schema}", f'"{durable.db.schema}"'))).scalar_one()


def run(pg: Postgres, broker: PrivateServer, workflows: int, steps: int, at: float | None, down: float,
        timeout: float) -> dict[str, Any]:
    """One run, with the broker killed ``at`` seconds in (or undisturbed: ``at`` None)."""
    prefix = f"bench_{uuid.uuid4().hex[:8]}"
    queue = f"bench-broker-{prefix}"
    app, durable = make_engine(broker.url, pg.database_url, prefix, queue, steps, "per_step", 0.5)
    durable.ensure_schema()
    env = engine_env(broker.url, pg.database_url, prefix, queue, steps, "per_step", 0.5)
    ticker = beat("bench.app", env=env, cwd=str(ROOT)).start()
    try:
        with start_worker([queue], env, 2) as worker:
            pid = worker.pid
            began = time.monotonic()
            start_executions(durable, workflows)
            back = began
            if at is not None:
                time.sleep(max(0.0, at - (time.monotonic() - began)))
                back = broker.restart(down_for=down)
            done = "SELECT count(*) FROM {schema}.workflow_executions WHERE status = 'completed'"
            while scalar(durable, done) < workflows:
                if time.monotonic() - began > timeout or not worker.alive():
                    raise SystemExit(f"not done after {time.monotonic() - began:.0f}s: {scalar(durable, done)} of "
                                     f"{workflows} (worker alive: {worker.alive()})\n{worker.log()[-3000:]}")
                time.sleep(0.05)
            finished = time.monotonic()
            alive = worker.alive() and worker.pid == pid
        longest = scalar(durable, "SELECT coalesce(max(extract(epoch from g)), 0) FROM (SELECT started_at - "
                                  "lag(completed_at) OVER (PARTITION BY execution_id ORDER BY started_at) AS g "
                                  "FROM {schema}.step_executions) x")
        twice = scalar(durable, "SELECT count(*) FROM (SELECT 1 FROM {schema}.step_executions WHERE status = "
                                "'completed' GROUP BY execution_id, step_name HAVING count(*) > 1) x")
        caught = worker.log().count("failed inside kombu")
    finally:
        ticker.stop()
        durable.db.dispose()
        drop_schemas(pg, prefix)
    return {"total": finished - began, "after_back": finished - back, "longest_wait": float(longest),
            "checkpointed_twice": twice, "worker_lived": alive, "kombu_close_caught": caught}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workflows", type=int, default=200)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rabbitmq", action="store_true", help="a private RabbitMQ instead of Redis")
    parser.add_argument("--at", type=float, default=1.0, help="seconds into the run the broker is killed")
    parser.add_argument("--down", type=float, default=1.0, help="seconds it stays down")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432", help="server URL (no database)")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    pg = Postgres(args.pg, "postgres")
    ensure_database(pg)
    with (PrivateRabbitMQ() if args.rabbitmq else PrivateRedis()) as broker:
        calm = run(pg, broker, args.workflows, args.steps, None, 0.0, args.timeout)
        print(f"undisturbed: {calm['total']:.2f}s, longest wait between two steps {calm['longest_wait']:.2f}s",
              flush=True)
        hit = run(pg, broker, args.workflows, args.steps, args.at, args.down, args.timeout)
    print(f"{broker.name} killed {args.at:g}s in, down {args.down:g}s: {hit['total']:.2f}s in all, done "
          f"{hit['after_back']:.2f}s after the broker was back (undisturbed, the run had "
          f"{max(0.0, calm['total'] - args.at):.2f}s left at {args.at:g}s)")
    print(f"  longest wait between two steps of one execution: {hit['longest_wait']:.2f}s; steps checkpointed "
          f"twice: {hit['checkpointed_twice']}; worker lived through it: {hit['worker_lived']} (kombu's failed "
          f"close caught {hit['kombu_close_caught']} times)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
