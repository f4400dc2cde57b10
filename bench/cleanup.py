"""Cleanup under load: delete N finished executions (filled with SQL) while workflows run.

    python -m bench.cleanup [--finished 1000000] [--workflows 200] [--steps 10] [--batch-size 1000]

It fills a fresh schema with ``--finished`` finished executions (``bench.scale_fill``: steps,
waits, foreach iterations), starts a worker, and runs rounds of ``--workflows`` workflows of
``--steps`` no-op steps: first without cleanup (the baseline), then back to back while
``durable.cleanup(older_than=0)`` deletes every filled execution in another thread. For each
phase it reports the running workflows' largest step delay (from one step's end, or the start,
to the next step's start) and their throughput in steps/s, and the cleanup's rate.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
import uuid
from typing import Any

import psycopg
from psycopg import sql

from bench.app import WORKFLOW, engine_env, make_engine
from bench.common import SCHEMA_PREFIX, Postgres, drop_schemas, ensure_database, start_worker
from bench.scale_fill import fill

_DELAYS = """
SELECT max(delay), count(*), extract(epoch FROM max(done) - min(created)) FROM (
  SELECT s.started_at - coalesce(lag(s.completed_at) OVER (PARTITION BY s.execution_id ORDER BY s.seq),
                                 e.created_at) AS delay,
         s.completed_at AS done, e.created_at AS created
    FROM {s}.step_executions s JOIN {s}.workflow_executions e ON e.id = s.execution_id
   WHERE e.id = ANY(%s)) d
"""


def run_round(durable: Any, conn: psycopg.Connection, schema: str, count: int, timeout: float = 120) -> dict[str, float]:
    ids = [durable.start(WORKFLOW) for _ in range(count)]
    deadline = time.monotonic() + timeout
    s = sql.Identifier(schema)
    while time.monotonic() < deadline:
        done = conn.execute(sql.SQL("SELECT count(*) FROM {}.workflow_executions WHERE id = ANY(%s) "
                                    "AND status = 'completed'").format(s), (ids,)).fetchone()
        if done and done[0] == count:
            break
        time.sleep(0.1)
    else:
        raise RuntimeError(f"round of {count} workflows not finished after {timeout}s")
    row = conn.execute(sql.SQL(_DELAYS).format(s=s), (ids,)).fetchone()
    assert row is not None
    return {"max_delay_s": row[0].total_seconds(), "steps": int(row[1]), "steps_per_s": int(row[1]) / float(row[2])}


def summary(rounds: list[dict[str, float]]) -> dict[str, float]:
    steps = sum(r["steps"] for r in rounds)
    seconds = sum(r["steps"] / r["steps_per_s"] for r in rounds)
    return {"rounds": len(rounds), "max_delay_s": max(r["max_delay_s"] for r in rounds), "steps_per_s": steps / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--finished", type=int, default=1_000_000)
    parser.add_argument("--workflows", type=int, default=200)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--baseline-rounds", type=int, default=3)
    parser.add_argument("--postgres", default=os.environ.get("BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432"))
    parser.add_argument("--admin-database", default="test")
    parser.add_argument("--broker", default=os.environ.get("BENCH_BROKER", "redis://127.0.0.1:6379/9"))
    args = parser.parse_args()
    pg = Postgres(args.postgres, args.admin_database)
    ensure_database(pg)
    schema = f"{SCHEMA_PREFIX}cleanup_{uuid.uuid4().hex[:8]}"
    queue = f"bench-{schema}"
    _, durable = make_engine(args.broker, pg.database_url, schema, queue, args.steps, "per_step", 0.5)
    durable.prepare()
    try:
        with psycopg.connect(pg.dsn("durable_bench"), autocommit=True) as conn:
            filled = fill(conn, schema, args.finished, 0)
            print(f"filled {filled.rows} in {filled.seconds:.0f}s")
            env = engine_env(args.broker, pg.database_url, schema, queue, args.steps, "per_step", 0.5)
            with start_worker([queue], env, args.concurrency):
                run_round(durable, conn, schema, args.workflows)  # warm-up
                baseline = summary([run_round(durable, conn, schema, args.workflows)
                                    for _ in range(args.baseline_rounds)])
                print(f"without cleanup: {baseline}")
                result: dict[str, Any] = {}
                cleaner = threading.Thread(target=lambda: result.update(
                    report=durable.cleanup(older_than=0, batch_size=args.batch_size)))
                cleaner.start()
                during = []
                while cleaner.is_alive():
                    during.append(run_round(durable, conn, schema, args.workflows))
                cleaner.join()
                report = result["report"]
                print(f"with cleanup:    {summary(during)}")
                print(f"cleanup: {report.workflows} executions ({report.executions} rows, {report.attempts} attempts, "
                      f"{report.waits} waits) in {report.batches} batches, {report.seconds:.1f}s: "
                      f"{report.workflows / report.seconds:.0f} executions/s")
    finally:
        durable.db.dispose()
        drop_schemas(pg, schema)


if __name__ == "__main__":
    main()
