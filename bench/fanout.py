"""Fan-out throughput of durable-celery against plain Celery chords, in one run on one machine.

Scenarios (``--scenarios``, all four by default):

* ``foreach``: one execution of ``bench_foreach``: a foreach over ``--items`` (10,000) no-op
  items, ``--window`` (100) at a time, then a no-op step;
* ``chord``: one ``celery.chord`` of ``--items`` no-op tasks and a no-op callback;
* ``parallel``: ``--workflows`` (20) executions of ``bench_parallel``, each a parallel block of
  ``--branches`` (50) no-op branches, then a no-op step;
* ``chords``: ``--workflows`` chords of ``--branches`` no-op tasks and a no-op callback.

Every scenario gets a fresh ``celery worker`` subprocess (prefork, ``--concurrency`` 2, default
prefetch) on its own queue; chords keep their results in Redis. The clock runs from just before
the first start to the last completion (``max(completed_at)`` of the executions; the return of
the last chord's ``get()``). Reported: wall time, items/s (items or branches per second), the
ratio to the matching chord scenario, Postgres commits per item (``xact_commit`` of the
``durable_bench`` database, measured as in ``bench.bench``: everything the engine commits,
starts, spawns, joins and heartbeats included, the bench's own polls subtracted) and the
worker's peak RSS (``VmHWM`` of the largest process of its tree, Linux only).

Run from the repository root::

    python -m bench.fanout [--items 10000] [--window 100] [--workflows 20] [--branches 50]
                           [--scenarios foreach,chord,parallel,chords] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # also runnable as `python bench/fanout.py`
    sys.path.insert(0, str(ROOT))

from celery import chord, group  # noqa: E402
from psycopg import sql  # noqa: E402

from bench.bench import CpuMeter, Poller, Stats, _children  # noqa: E402
from bench.common import (  # noqa: E402
    ROOT as REPO,
)
from bench.common import (  # noqa: E402
    SCHEMA_PREFIX,
    Postgres,
    delete_queues,
    drop_schemas,
    ensure_database,
    exclusive_run,
)
from bench.common import fmt as _fmt  # noqa: E402
from bench.fanout_app import FOREACH, PARALLEL, chord_env, engine_env, make_chord, make_engine  # noqa: E402
from durable_celery.testing.workers import CeleryProcess, worker  # noqa: E402

SCENARIOS = ("foreach", "chord", "parallel", "chords")
ANCHOR = {"foreach": "chord", "parallel": "chords"}


@dataclass(frozen=True)
class Config:
    items: int = 10_000
    window: int = 100
    workflows: int = 20
    branches: int = 50
    broker: str = "redis://127.0.0.1:6379/9"
    result_backend: str = "redis://127.0.0.1:6379/10"
    postgres: str = "postgresql://postgres@127.0.0.1:5432"
    admin_database: str = "test"
    scenarios: tuple[str, ...] = SCENARIOS
    concurrency: int = 2
    dispatch_mode: str = "per_step"
    poll_interval: float = 0.2
    stats_settle: float = 11.0
    stall: float = 60.0
    json_path: str | None = None

    @property
    def pg(self) -> Postgres:
        return Postgres(self.postgres, self.admin_database)

    def dsn(self, database: str) -> str:  # what bench.bench's Stats and Poller read
        return self.pg.dsn(database)


@dataclass
class Result:
    scenario: str
    items: int  # items (foreach, chord) or branches in all (parallel, chords)
    wall_s: float
    failed: int = 0
    commits: int | None = None
    peak_rss_mb: float | None = None
    cpu_worker_s: float | None = None

    @property
    def items_per_s(self) -> float:
        return self.items / self.wall_s

    @property
    def commits_per_item(self) -> float | None:
        return None if self.commits is None else self.commits / self.items

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "items_per_s": self.items_per_s, "commits_per_item": self.commits_per_item}


def peak_rss_mb(pid: int) -> float | None:
    """The largest ``VmHWM`` (peak resident set) among process ``pid`` and its children, in MB."""
    peaks = []
    for proc in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{proc}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024)
        except (OSError, ValueError):
            continue
    return max(peaks) if peaks else None


def _worker(env: dict[str, str], queue: str, concurrency: int) -> CeleryProcess:
    return worker("bench.fanout_app", [queue], concurrency=concurrency, pool="prefork", env=env, cwd=str(REPO))


class TopLevel(Poller):
    """Waits for top-level executions (branches and iterations are rows too), counting progress
    over every row: a foreach of 10,000 items finishes only at its end."""

    def progress(self) -> tuple[int, int]:
        """(finished top-level executions, finished rows of any kind)."""
        query = sql.SQL("SELECT count(*) FILTER (WHERE kind = 'workflow'), count(*) FROM {} "
                        "WHERE status IN ('completed', 'failed')").format(self._table)
        top, rows = self._one(query)
        return int(top), int(rows)

    def wait_finished(self, count: int, stall: float, proc: CeleryProcess) -> None:
        rows, last_progress = -1, time.monotonic()
        while True:
            top, now_rows = self.progress()
            if top >= count:
                return
            if now_rows != rows:
                rows, last_progress = now_rows, time.monotonic()
            if time.monotonic() - last_progress > stall or not proc.alive():
                raise RuntimeError(f"{top}/{count} executions finished, no progress for {stall:g}s; "
                                   f"worker log:\n{proc.log()[-4000:]}")
            time.sleep(self._interval)


def run_engine(cfg: Config, scenario: str, queue: str, schema: str) -> Result:
    drop_schemas(cfg.pg, schema)
    app, durable = make_engine(cfg.broker, cfg.pg.database_url, schema, queue, cfg.window, cfg.branches,
                               cfg.dispatch_mode)
    durable.prepare()
    env = engine_env(cfg.broker, cfg.pg.database_url, schema, queue, cfg.window, cfg.branches, cfg.dispatch_mode)
    if scenario == "foreach":
        starts, total = [(FOREACH, {"items": cfg.items})], cfg.items
        warmup = [(FOREACH, {"items": cfg.window})]
    else:
        starts, total = [(PARALLEL, {})] * cfg.workflows, cfg.workflows * cfg.branches
        warmup = [(PARALLEL, {})]
    stats = Stats(cfg)  # type: ignore[arg-type]  # reads only dsn() and admin_database
    try:
        with _worker(env, queue, cfg.concurrency) as proc:
            poller = TopLevel(cfg, schema)  # type: ignore[arg-type]
            for workflow, ctx in warmup:
                durable.start(workflow, ctx)
            poller.wait_finished(len(warmup), cfg.stall, proc)
            time.sleep(cfg.stats_settle)  # idle backends flush the warm-up's statistics
            before = stats.commits()
            poller.queries = 0
            cpu = CpuMeter(proc.pid)
            began = time.time()
            for workflow, ctx in starts:
                durable.start(workflow, ctx)
            poller.wait_finished(len(warmup) + len(starts), cfg.stall, proc)
            cpu.stop()
            rss = peak_rss_mb(proc.pid)
            failed, last = poller.outcome()
        durable.db.dispose()
        poller.close()
        stats.wait_disconnected()
        commits = stats.commits() - before - poller.queries
    finally:
        delete_queues(app, queue, f"{queue}-default")
    return Result(scenario, total, last.timestamp() - began, failed=failed, commits=commits, peak_rss_mb=rss,
                  cpu_worker_s=cpu.worker)


def _chords(item: Any, callback: Any, count: int, size: int) -> list[Any]:
    return [chord(group(item.s(i) for i in range(size)))(callback.s()) for _ in range(count)]


def run_chord(cfg: Config, scenario: str, queue: str) -> Result:
    app, item, callback = make_chord(cfg.broker, cfg.result_backend, queue)
    count, size = (1, cfg.items) if scenario == "chord" else (cfg.workflows, cfg.branches)
    try:
        with _worker(chord_env(cfg.broker, cfg.result_backend, queue), queue, cfg.concurrency) as proc:
            for result in _chords(item, callback, 1, min(size, cfg.window)):  # warm-up
                result.get(timeout=cfg.stall)
            cpu = CpuMeter(proc.pid)
            began = time.perf_counter()
            failed = 0
            for result in _chords(item, callback, count, size):
                try:
                    failed += result.get(timeout=max(cfg.stall, size / 5)) != size  # a big chord is slow
                except Exception:
                    failed += 1
            wall = time.perf_counter() - began
            cpu.stop()
            rss = peak_rss_mb(proc.pid)
    finally:
        delete_queues(app, queue)
    return Result(scenario, count * size, wall, failed=failed, peak_rss_mb=rss, cpu_worker_s=cpu.worker)


def run(cfg: Config) -> dict[str, Result]:
    run_id = uuid.uuid4().hex[:8]
    ensure_database(cfg.pg)
    results: dict[str, Result] = {}
    with exclusive_run(cfg.pg):
        drop_schemas(cfg.pg)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"fan-out bench {run_id}: items={cfg.items} window={cfg.window} workflows={cfg.workflows} "
              f"branches={cfg.branches} broker={cfg.broker} mode={cfg.dispatch_mode} cpus={os.cpu_count()} "
              f"load(1m)={load:.2f}", flush=True)
        try:
            for scenario in cfg.scenarios:
                queue = f"bench-{run_id}-{scenario}"
                if scenario in ANCHOR:
                    result = run_engine(cfg, scenario, queue, f"{SCHEMA_PREFIX}{run_id}{scenario}")
                else:
                    result = run_chord(cfg, scenario, queue)
                results[scenario] = result
                print_result(result, results)
        finally:
            drop_schemas(cfg.pg)
    return results


def ratio(results: dict[str, Result], scenario: str) -> float | None:
    anchor = results.get(ANCHOR.get(scenario, ""))
    mine = results.get(scenario)
    return None if anchor is None or mine is None else mine.items_per_s / anchor.items_per_s


def print_result(r: Result, results: dict[str, Result]) -> None:
    cpu = None if r.cpu_worker_s is None else r.cpu_worker_s / r.items * 1000
    print(f"[{r.scenario}] {r.items} items: {r.wall_s:.2f} s, {r.items_per_s:.0f} items/s, "
          f"commits/item {_fmt(r.commits_per_item, '.3f')}, peak RSS {_fmt(r.peak_rss_mb, '.0f')} MB, "
          f"worker CPU {_fmt(cpu, '.2f')} ms/item" + (f", FAILED {r.failed}" if r.failed else ""), flush=True)


def print_summary(cfg: Config, results: dict[str, Result]) -> None:
    print(f"\nSummary: broker={cfg.broker} concurrency={cfg.concurrency} (prefork)")
    print(f"{'scenario':<10}{'items':>8}{'wall s':>9}{'items/s':>10}{'vs chord':>10}{'commits/item':>14}"
          f"{'peak RSS MB':>13}")
    for name, r in results.items():
        vs = ratio(results, name)
        print(f"{name:<10}{r.items:>8}{r.wall_s:>9.2f}{r.items_per_s:>10.0f}"
              f"{_fmt(vs, '.2f') + ('x' if vs is not None else ''):>10}{_fmt(r.commits_per_item, '.3f'):>14}"
              f"{_fmt(r.peak_rss_mb, '.0f'):>13}")
    for name in ("foreach", "parallel"):
        vs = ratio(results, name)
        if vs is not None:
            print(f"goal: {name} >= 1.0x its chord: {vs:.2f}x {'met' if vs >= 1.0 else 'NOT met'}")


def parse_args(argv: Sequence[str] | None = None) -> Config:
    d = Config()
    p = argparse.ArgumentParser(prog="python -m bench.fanout", description=__doc__.split("\n\n")[0])
    p.add_argument("--items", type=int, default=d.items, help="items of the foreach (and tasks of its chord)")
    p.add_argument("--window", type=int, default=d.window, help="the foreach's concurrency")
    p.add_argument("--workflows", type=int, default=d.workflows, help="parallel workflows (and chords)")
    p.add_argument("--branches", type=int, default=d.branches, help="branches per parallel block (tasks per chord)")
    p.add_argument("--broker", default=d.broker)
    p.add_argument("--result-backend", default=d.result_backend)
    p.add_argument("--postgres", default=d.postgres)
    p.add_argument("--admin-database", default=d.admin_database)
    p.add_argument("--scenarios", default=",".join(d.scenarios), help="subset of " + ",".join(SCENARIOS))
    p.add_argument("--concurrency", type=int, default=d.concurrency)
    p.add_argument("--dispatch-mode", default=d.dispatch_mode, choices=("per_step", "continuation"))
    p.add_argument("--stats-settle", type=float, default=d.stats_settle)
    p.add_argument("--stall", type=float, default=d.stall, help="give up when nothing finished for this long")
    p.add_argument("--json", dest="json_path")
    a = p.parse_args(argv)
    scenarios = tuple(s for s in a.scenarios.split(",") if s)
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        p.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    return replace(d, items=a.items, window=a.window, workflows=a.workflows, branches=a.branches, broker=a.broker,
                   result_backend=a.result_backend, postgres=a.postgres, admin_database=a.admin_database,
                   scenarios=scenarios, concurrency=a.concurrency, dispatch_mode=a.dispatch_mode,
                   stats_settle=a.stats_settle, stall=a.stall, json_path=a.json_path)


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    results = run(cfg)
    print_summary(cfg, results)
    if cfg.json_path:
        payload = {"config": asdict(cfg), "results": {k: r.to_dict() for k, r in results.items()},
                   "ratios": {k: ratio(results, k) for k in ANCHOR}}
        Path(cfg.json_path).write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return 1 if any(r.failed for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
