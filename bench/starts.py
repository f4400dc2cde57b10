"""What a start costs, against Celery's own ways of sending work, in one run on one broker.

* **Latency**: one ``durable.start`` (its row committed, then its message published) against
  one ``apply_async`` of a chain of ``--steps`` no-op tasks (with the Redis result backend, as in
  ``bench.bench``), taken in turns, ``--rounds`` times each; medians and 95th percentiles.
* **Throughput**: ``durable.start_many`` of ``--many`` inputs (one INSERT, one producer) against
  a loop of ``durable.start`` (``--loop`` of them) and ``group(...).apply_async()`` of
  ``--many`` plain no-op tasks (no result backend), each timed from the call to its return.

Nothing runs the messages: the bench measures the sending side only (every start's row is
committed and its message is on the broker when the call returns). The queues are unique to the
run and deleted afterwards; the engine's tables live in a schema ``bench_<run id>`` of the
``durable_bench`` database, dropped at the end.

Run from the repository root::

    python -m bench.starts [--broker URL] [--rounds 300] [--many 10000] [--loop 1000] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # also runnable as `python bench/starts.py`
    sys.path.insert(0, str(ROOT))

from celery import chain, group  # noqa: E402

from bench.app import WORKFLOW, make_chain, make_engine, make_plain  # noqa: E402
from bench.common import (  # noqa: E402
    SCHEMA_PREFIX,
    Postgres,
    delete_queues,
    drop_schemas,
    ensure_database,
    exclusive_run,
)
from durable_celery import Durable  # noqa: E402
from durable_celery.engine.values import Message  # noqa: E402
from durable_celery.runtime.starts import new_execution_row  # noqa: E402
from durable_celery.state.executions import insert_execution_txn  # noqa: E402

#: (description, figure, threshold, higher is better): issue 11, goal 4
GOALS = (
    ("start <= 1.2x a chain's apply_async (medians)", "start_vs_chain", 1.2, False),
    ("start_many >= 5,000 starts/s", "start_many_per_s", 5000.0, True),
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.starts", description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/9")
    parser.add_argument("--result-backend", default="redis://127.0.0.1:6379/10", help="the chain's results")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--admin-database", default="test")
    parser.add_argument("--steps", type=int, default=10, help="steps of the workflow and tasks of the chain")
    parser.add_argument("--rounds", type=int, default=300, help="single starts and chain sends, in turns")
    parser.add_argument("--many", type=int, default=10000, help="inputs of start_many and tasks of the group")
    parser.add_argument("--loop", type=int, default=1000, help="starts in the loop of start")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--json", dest="json_path", default=None)
    return parser.parse_args(argv)


def timed(call: Callable[[], Any]) -> tuple[float, float]:
    """Wall and CPU seconds (of this process) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    call()
    return time.perf_counter() - wall, time.process_time() - cpu


def insert_once(durable: Durable, row: dict[str, Any]) -> None:
    with durable.db.single() as conn:
        insert_execution_txn(conn, row)


def p95(samples: list[float]) -> float:
    return sorted(samples)[max(0, int(len(samples) * 0.95) - 1)]


def run(cfg: argparse.Namespace, run_id: str) -> dict[str, Any]:
    pg = Postgres(cfg.postgres, cfg.admin_database)
    ensure_database(pg)
    prefix = f"{SCHEMA_PREFIX}{run_id}"
    queue, chain_queue, plain_queue = (f"bench-{run_id}-{name}" for name in ("starts", "chain", "group"))
    app, durable = make_engine(cfg.broker, pg.database_url, prefix, queue, cfg.steps, "per_step", 1.0)
    chain_app, chain_task = make_chain(cfg.broker, cfg.result_backend, chain_queue)
    plain_app, plain_task = make_plain(cfg.broker, plain_queue, None)
    steps = chain(*(chain_task.si() for _ in range(cfg.steps)))
    try:
        with exclusive_run(pg):
            durable.ensure_schema()
            for _ in range(cfg.warmup):  # connections, compiled statements, queue declarations
                durable.start(WORKFLOW, {})
                steps.apply_async()
            durable.start_many(WORKFLOW, [{}] * cfg.warmup)
            group(plain_task.si() for _ in range(cfg.warmup)).apply_async()

            print(f"latency: {cfg.rounds} single starts and chain sends, in turns ...", flush=True)
            start_s, chain_s, insert_s, publish_s = [], [], [], []
            machine = durable.registry.machine_for(WORKFLOW)
            first = Message("not-an-execution", 0, WORKFLOW, machine.entry, queue, 0)
            for _ in range(cfg.rounds):
                start_s.append(timed(lambda: durable.start(WORKFLOW, {"i": 1}))[0])
                chain_s.append(timed(steps.apply_async)[0])
                # where a start's time goes: its row's insert (one autocommit statement) and its publish
                row = new_execution_row(machine, durable.settings, {"i": 1}, durable.clock.now())
                insert_s.append(timed(lambda row=row: insert_once(durable, row))[0])
                publish_s.append(timed(lambda: durable.dispatcher.send_many([first]))[0])

            print(f"throughput: start_many of {cfg.many}, a loop of {cfg.loop} starts, a group of {cfg.many} ...",
                  flush=True)
            inputs = [{"i": i} for i in range(cfg.many)]
            many_wall, many_cpu = timed(lambda: durable.start_many(WORKFLOW, inputs))
            loop_wall, loop_cpu = timed(lambda: [durable.start(WORKFLOW, {"i": i}) for i in range(cfg.loop)])
            tasks = group(plain_task.si() for _ in range(cfg.many))
            group_wall, group_cpu = timed(tasks.apply_async)
    finally:
        drop_schemas(pg, prefix)
        durable.db.dispose()
        delete_queues(app, queue, f"{queue}-default")
        delete_queues(chain_app, chain_queue)
        delete_queues(plain_app, plain_queue)

    start_median, chain_median = statistics.median(start_s), statistics.median(chain_s)
    return {
        "insert_median_ms": statistics.median(insert_s) * 1e3, "publish_median_ms": statistics.median(publish_s) * 1e3,
        "start_median_ms": start_median * 1e3, "start_p95_ms": p95(start_s) * 1e3,
        "chain_median_ms": chain_median * 1e3, "chain_p95_ms": p95(chain_s) * 1e3,
        "start_vs_chain": start_median / chain_median,
        "start_many_per_s": cfg.many / many_wall, "start_many_cpu_us": many_cpu / cfg.many * 1e6,
        "start_loop_per_s": cfg.loop / loop_wall, "start_loop_cpu_us": loop_cpu / cfg.loop * 1e6,
        "group_per_s": cfg.many / group_wall, "group_cpu_us": group_cpu / cfg.many * 1e6,
    }


def print_summary(cfg: argparse.Namespace, r: dict[str, Any]) -> None:
    print(f"\nStarts on {cfg.broker} (load average {os.getloadavg()[0]:.2f})\n")
    print(f"{'single call':<34}{'median ms':>10}{'p95 ms':>10}")
    print(f"{'durable.start':<34}{r['start_median_ms']:>10.2f}{r['start_p95_ms']:>10.2f}")
    print(f"{f'chain of {cfg.steps}: apply_async':<34}{r['chain_median_ms']:>10.2f}{r['chain_p95_ms']:>10.2f}")
    print(f"{'  of a start: its INSERT + COMMIT':<34}{r['insert_median_ms']:>10.2f}")
    print(f"{'  of a start: its publish':<34}{r['publish_median_ms']:>10.2f}")
    print(f"ratio (medians): {r['start_vs_chain']:.2f}\n")
    print(f"{'many':<34}{'per s':>10}{'CPU us each':>13}")
    print(f"{f'durable.start_many({cfg.many})':<34}{r['start_many_per_s']:>10.0f}{r['start_many_cpu_us']:>13.0f}")
    print(f"{f'durable.start x {cfg.loop}':<34}{r['start_loop_per_s']:>10.0f}{r['start_loop_cpu_us']:>13.0f}")
    print(f"{f'group({cfg.many}).apply_async':<34}{r['group_per_s']:>10.0f}{r['group_cpu_us']:>13.0f}")
    print("\nGoals (issue 11, goal 4):")
    for text, key, threshold, higher in GOALS:
        met = r[key] >= threshold if higher else r[key] <= threshold
        print(f"  [{'met' if met else 'NOT met'}] {text}: {r[key]:.2f}")


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    run_id = uuid.uuid4().hex[:8]
    results = run(cfg, run_id)
    print_summary(cfg, results)
    if cfg.json_path:
        Path(cfg.json_path).write_text(json.dumps({"run_id": run_id, "config": vars(cfg), "results": results},
                                                  indent=2))
        print(f"\nresults written to {cfg.json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
