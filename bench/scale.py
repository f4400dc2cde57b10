"""Flat cost as tables grow: the tick's sweeps, the hot queries' plans and steps/s with a big
history in the tables, against empty tables in the same run.

1. A fresh schema is filled (``bench/scale_fill.py``, set-based SQL) with ``--finished``
   finished and ``--waiting`` waiting executions, their step attempts, waits and events.
2. Each sweep of the tick (``bench/scale_plans.py``) runs ``--sweeps`` times in its own
   transaction, then one whole ``tick`` call as many times: median, p95 and best, in ms.
3. Every hot query (the tick's sweeps, claim, checkpoint, lease heartbeat, queue claims, the
   client's list and counts) is explained: ``EXPLAIN (ANALYZE, BUFFERS)`` with its values (the
   custom plan) and the generic plan of the prepared statement. ``--plans`` prints them in full;
   the summary says whether each is on an index (no ``Seq Scan`` of a big table).
4. steps/s of ``bench_noop`` (W workflows of N no-op steps, as ``bench.bench``) in each
   ``--modes``, on the big tables and on an empty schema, with a ``celery worker -P prefork
   -c 2`` and a beat (ticking every second on those tables): the ratio big / empty.

Run from the repository root (one bench run at a time, in the ``durable_bench`` database)::

    python -m bench.scale [--finished 1000000] [--waiting 100000] [--sweeps 20]
                          [--workflows 200] [--steps 10] [--modes per_step,continuation] [--plans]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # also runnable as `python bench/scale.py`
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from celery import Celery  # noqa: E402
from psycopg import sql  # noqa: E402

from bench.app import WORKFLOW, engine_env, make_engine  # noqa: E402
from bench.common import (  # noqa: E402
    DATABASE,
    SCHEMA_PREFIX,
    Postgres,
    delete_queues,
    drop_schemas,
    ensure_database,
    exclusive_run,
    start_worker,
)
from bench.scale_fill import Filled, fill  # noqa: E402
from bench.scale_plans import LIMITED, Plan, Timing, plans, sample, time_sweeps  # noqa: E402
from durable_celery import Durable  # noqa: E402
from durable_celery.testing.workers import CeleryProcess, beat  # noqa: E402

MODES = ("per_step", "continuation")
FINISHED = ("completed", "failed")


@dataclass(frozen=True)
class Config:
    finished: int = 1_000_000
    waiting: int = 100_000
    sweeps: int = 20
    workflows: int = 200
    steps: int = 10
    modes: tuple[str, ...] = MODES
    repeat: int = 1
    broker: str = "redis://127.0.0.1:6379/9"
    postgres: str = "postgresql://postgres@127.0.0.1:5432"
    admin_database: str = "test"
    concurrency: int = 2
    warmup: int = 10
    continuation_budget: float = 1.0
    stall: float = 60.0
    show_plans: bool = False
    json_path: str | None = None

    @property
    def pg(self) -> Postgres:
        return Postgres(self.postgres, self.admin_database)


def probe_engine(cfg: Config, schema: str) -> Durable:
    """An engine on ``schema`` (not attached to a worker) that declares the probed controlled
    queue, so the tick's queue sweep runs too."""
    return Durable(Celery(f"scale-{schema}", broker="memory://"), database_url=cfg.pg.database_url, prefix=schema,
                   queues={LIMITED.name: {"concurrency": LIMITED.concurrency}})


def fill_schema(cfg: Config, schema: str) -> Filled:
    durable = probe_engine(cfg, schema)
    durable.prepare()
    durable.db.dispose()
    with psycopg.connect(cfg.pg.dsn(DATABASE), autocommit=True) as conn:
        return fill(conn, schema, cfg.finished, cfg.waiting)


# -- steps/s ---------------------------------------------------------------------------------------


def _finished(conn: psycopg.Connection, schema: str) -> int:
    """``bench_noop`` executions completed or failed (on the workflow's index, whatever the history)."""
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}.workflow_executions WHERE workflow = %s AND status = ANY(%s)")
                       .format(sql.Identifier(schema)), (WORKFLOW, list(FINISHED))).fetchone()
    assert row is not None
    return int(row[0])


def _wait_finished(conn: psycopg.Connection, schema: str, count: int, stall: float, procs: Sequence[CeleryProcess]
                   ) -> None:
    done, last_progress = 0, time.monotonic()
    while (now_done := _finished(conn, schema)) < count:
        if now_done != done:
            done, last_progress = now_done, time.monotonic()
        if time.monotonic() - last_progress > stall or not all(p.alive() for p in procs):
            logs = "\n".join(p.log()[-3000:] for p in procs)
            raise RuntimeError(f"{done}/{count} bench_noop executions finished, no progress for {stall:g}s:\n{logs}")
        time.sleep(0.2)


def steps_per_s(cfg: Config, mode: str, schema: str, tag: str) -> float:
    """W x N no-op steps in ``mode`` on the tables of ``schema`` (migrated; filled or not), with a
    worker and a beat; the clock runs from the first start to the last completion."""
    queue = f"scale-{tag}-{mode}"
    app, durable = make_engine(cfg.broker, cfg.pg.database_url, schema, queue, cfg.steps, mode,
                               cfg.continuation_budget)
    durable.prepare()
    env = engine_env(cfg.broker, cfg.pg.database_url, schema, queue, cfg.steps, mode, cfg.continuation_budget)
    try:
        with start_worker([queue], env, cfg.concurrency) as proc, \
                beat("bench.app", env=env, cwd=str(ROOT)) as ticker, \
                psycopg.connect(cfg.pg.dsn(DATABASE), autocommit=True) as conn:
            done = _finished(conn, schema)
            for _ in range(cfg.warmup):
                durable.start(WORKFLOW)
            _wait_finished(conn, schema, done + cfg.warmup, cfg.stall, [proc, ticker])
            began = time.time()
            for _ in range(cfg.workflows):
                durable.start(WORKFLOW)
            _wait_finished(conn, schema, done + cfg.warmup + cfg.workflows, cfg.stall, [proc, ticker])
            row = conn.execute(sql.SQL("SELECT max(completed_at) FROM {}.workflow_executions WHERE workflow = %s")
                               .format(sql.Identifier(schema)), (WORKFLOW,)).fetchone()
            assert row is not None
    finally:
        durable.db.dispose()
        delete_queues(app, queue, f"{queue}-default")
    return cfg.workflows * cfg.steps / (row[0].timestamp() - began)


# -- reporting ---------------------------------------------------------------------------------------


def print_timings(timings: list[Timing]) -> None:
    print(f"\nTick sweeps ({len(timings[0].runs_ms)} runs each, ms):")
    print(f"  {'sweep':<30}{'median':>9}{'p95':>9}{'best':>9}")
    for tm in timings:
        print(f"  {tm.name:<30}{tm.median:>9.2f}{tm.p95:>9.2f}{tm.best:>9.2f}")


def _summary_line(plan: Plan) -> str:
    ms = next((line.split(":")[1].strip() for line in plan.custom.splitlines() if "Execution Time" in line), "?")
    first = plan.custom.splitlines()[0].split("  (")[0].strip()
    access = sorted({line.strip().split("  (")[0].lstrip("-> ") for line in (plan.custom + "\n" + plan.generic)
                     .splitlines() if " on " in line and ("Scan" in line)})
    verdict = "index" if plan.on_index else "SEQ SCAN " + ",".join(plan.seq_scans)
    return f"{verdict:<8} {ms:>10}  {first}; " + "; ".join(access)


def print_plans(found: dict[str, list[Plan]], full: bool) -> None:
    print("\nHot queries (custom and generic plans; 'index' = no Seq Scan on "
          "workflow_executions, step_executions, waits or events):")
    for name, statements in found.items():
        for n, plan in enumerate(statements):
            label = name if len(statements) == 1 else f"{name} [{n + 1}/{len(statements)}]"
            print(f"  {label:<40} {_summary_line(plan)}")
            if full:
                print("    " + plan.statement.replace("\n", "\n    "))
                print("    -- custom plan\n    " + plan.custom.replace("\n", "\n    "))
                print("    -- generic plan\n    " + plan.generic.replace("\n", "\n    "))


def print_throughput(rates: dict[str, dict[str, list[float]]]) -> dict[str, float]:
    print("\nsteps/s, big tables vs empty (median of rounds):")
    ratios = {}
    for mode, by in rates.items():
        empty, big = _median(by["empty"]), _median(by["big"])
        ratios[mode] = big / empty
        print(f"  {mode:<14} empty {empty:8.1f}   big {big:8.1f}   ratio {ratios[mode]:.2f}"
              f"   (rounds: empty {_rounds(by['empty'])}; big {_rounds(by['big'])})")
    return ratios


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _rounds(values: list[float]) -> str:
    return ", ".join(f"{v:.0f}" for v in values)


# -- command line ----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> Config:
    d = Config()
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--finished", type=int, default=d.finished, help="finished executions in the big tables")
    parser.add_argument("--waiting", type=int, default=d.waiting, help="waiting executions in the big tables")
    parser.add_argument("--sweeps", type=int, default=d.sweeps, help="timed runs of each sweep and of the tick")
    parser.add_argument("--workflows", type=int, default=d.workflows, help="W, workflows per steps/s run")
    parser.add_argument("--steps", type=int, default=d.steps, help="N, no-op steps per workflow")
    parser.add_argument("--modes", default=",".join(d.modes),
                        help="dispatch modes for steps/s (comma-separated; empty: skip steps/s)")
    parser.add_argument("--repeat", type=int, default=d.repeat, help="rounds of steps/s (empty and big interleaved)")
    parser.add_argument("--broker", default=d.broker)
    parser.add_argument("--postgres", default=d.postgres, help="server URL, without a database")
    parser.add_argument("--admin-database", default=d.admin_database)
    parser.add_argument("--plans", action="store_true", help="print every plan in full")
    parser.add_argument("--json", dest="json_path", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    if set(modes) - set(MODES):
        parser.error(f"--modes takes a subset of {','.join(MODES)}")
    if min(args.finished, args.waiting) < 0 or min(args.sweeps, args.workflows, args.steps, args.repeat) < 1:
        parser.error("sizes must not be negative; --sweeps, --workflows, --steps and --repeat at least 1")
    return Config(finished=args.finished, waiting=args.waiting, sweeps=args.sweeps, workflows=args.workflows,
                  steps=args.steps, modes=modes, repeat=args.repeat, broker=args.broker, postgres=args.postgres,
                  admin_database=args.admin_database, show_plans=args.plans, json_path=args.json_path)


def run(cfg: Config) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:8]
    big = f"{SCHEMA_PREFIX}{run_id}big"
    ensure_database(cfg.pg)
    with exclusive_run(cfg.pg):
        drop_schemas(cfg.pg)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"scale run {run_id}: {cfg.finished:,} finished + {cfg.waiting:,} waiting executions, "
              f"cpus={os.cpu_count()} load(1m)={load:.2f}", flush=True)
        try:
            filled = fill_schema(cfg, big)
            print(f"filled in {filled.seconds:.1f} s: " + ", ".join(f"{t} {n:,}" for t, n in filled.rows.items()),
                  flush=True)
            durable = probe_engine(cfg, big)
            at = sample(durable)
            timings = time_sweeps(durable, cfg.sweeps, at)
            print_timings(timings)
            found = plans(durable, cfg.pg.dsn(DATABASE), at)
            durable.db.dispose()
            print_plans(found, cfg.show_plans)
            rates: dict[str, dict[str, list[float]]] = {m: {"empty": [], "big": []} for m in cfg.modes}
            for n in range(cfg.repeat):
                for mode in cfg.modes:
                    empty = f"{SCHEMA_PREFIX}{run_id}e{n}{mode[:4]}"
                    rates[mode]["empty"].append(steps_per_s(cfg, mode, empty, f"{run_id}e{n}"))
                    rates[mode]["big"].append(steps_per_s(cfg, mode, big, f"{run_id}b{n}"))
                    print(f"  [{mode} round {n + 1}] empty {rates[mode]['empty'][-1]:.1f} steps/s, "
                          f"big {rates[mode]['big'][-1]:.1f} steps/s", flush=True)
            ratios = print_throughput(rates) if cfg.modes else {}
        finally:
            drop_schemas(cfg.pg)
    return {"config": asdict(cfg), "fill": asdict(filled),
            "sweeps_ms": {tm.name: {"median": tm.median, "p95": tm.p95, "best": tm.best, "runs": tm.runs_ms}
                          for tm in timings},
            "plans": {name: [{"on_index": p.on_index, "seq_scans": p.seq_scans, "custom": p.custom,
                              "generic": p.generic} for p in ps] for name, ps in found.items()},
            "steps_per_s": rates, "ratios": ratios}


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    figures = run(cfg)
    tick = figures["sweeps_ms"]["tick (whole sweep)"]
    off_index = [name for name, ps in figures["plans"].items() if not all(p["on_index"] for p in ps)]
    print(f"\nGoals:\n  one tick sweep < 50 ms          median {tick['median']:.1f} ms, best {tick['best']:.1f} ms  "
          f"{'met' if tick['median'] < 50 else 'NOT met'}")
    print(f"  every hot query on an index     {'met' if not off_index else 'NOT met: ' + ', '.join(off_index)}")
    for mode, ratio in figures["ratios"].items():
        print(f"  {mode} steps/s big/empty >= 0.9  {ratio:.2f}  {'met' if ratio >= 0.9 else 'NOT met'}")
    if cfg.json_path:
        Path(cfg.json_path).write_text(json.dumps(figures, indent=2, default=str) + "\n")
        print(f"\nfigures written to {cfg.json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
