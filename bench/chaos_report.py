"""The chaos run's report (``bench/chaos.py``): recovery figures per kind of fault, the
throughput timeline, the checks, as one JSON-able dict and as the printed summary.

Besides the recovery time defined in ``bench/chaos_faults.py`` (every execution in flight at the
fault has moved on), each fault gets a second figure read from the throughput: **throughput
back** is the first moment ``t`` from the fault on (from the server's return, for a server) such
that the 3 s from ``t`` completed at least 80 % of the steps per second completed in the 10 s
before the fault, minus the fault's time. It is 0 when throughput did not drop, and it is rough
when faults follow each other closely (the 10 s before a fault may hold the previous one).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.chaos_faults import Fault

BEFORE, AFTER, SHARE = 10.0, 3.0, 0.8  # throughput back: the window before, the window after, the share
THROUGHPUT_BACK = (f"the first moment t from the fault on (from the server's return, for a server) such that the "
                   f"{AFTER:g} s from t completed at least {SHARE:.0%} of the steps per second completed in the "
                   f"{BEFORE:g} s before the fault, minus the fault's time (0: throughput did not drop).")


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    """n, p50, p95 and max (nearest rank) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return {"n": 0, "p50": None, "p95": None, "max": None}

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]
    return {"n": len(ordered), "p50": rank(0.5), "p95": rank(0.95), "max": ordered[-1]}


def throughput_back(completions: Sequence[float], fault: Fault, limit: float = 300.0) -> float | None:
    """See the module docstring; ``completions``: sorted epoch times of the completed steps."""
    def rate(start: float, seconds: float) -> float:
        return (bisect.bisect_left(completions, start + seconds) - bisect.bisect_left(completions, start)) / seconds

    before = rate(fault.wall - BEFORE, BEFORE)
    if before == 0:
        return None
    t = fault.wall + (fault.back - fault.at if fault.back is not None else 0.0)
    while t < fault.wall + limit:
        if rate(t, AFTER) >= SHARE * before:
            return t - fault.wall
        t += 0.25
    return None


def timeline(completions: Sequence[float], origin: float) -> list[int]:
    """Completed steps in each second from ``origin`` (epoch) on."""
    counts: list[int] = []
    for at in completions:
        second = int(at - origin)
        if second >= 0:
            counts.extend([0] * (second + 1 - len(counts)))
            counts[second] += 1
    return counts


def build(*, run_id: str, config: dict[str, Any], wall: float, workflows: int, faults: list[Fault],
          completions: Sequence[float], origin: float, origin_wall: float, definition: str,
          findings: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """The report: ``findings`` is ``Findings.to_dict()``; ``origin``/``origin_wall`` the monotonic and
    epoch times the load began."""
    injected = [f.at for f in faults if f.kind != "control"]
    by_kind: dict[str, list[Fault]] = {}
    for fault in faults:
        end = fault.recovered_at if fault.recovered_at is not None else float("inf")
        if fault.kind == "control" and any(fault.at <= at <= end for at in injected):
            continue  # a fault came before this probe recovered: it measured that fault
        by_kind.setdefault(fault.kind, []).append(fault)
    back = {id(f): throughput_back(completions, f) for f in faults if f.kind != "control"}
    stats = {kind: {"from_fault": percentiles([f.recovery_s for f in items if f.recovery_s is not None]),
                    "from_back": percentiles([f.after_back_s for f in items if f.after_back_s is not None]),
                    "throughput_back": percentiles([v for f in items if (v := back.get(id(f))) is not None]),
                    "not_recovered": sum(f.recovered_at is None for f in items)}
             for kind, items in by_kind.items()}
    span = completions[-1] - completions[0] if len(completions) > 1 else None
    return {
        "run_id": run_id, "ok": findings["ok"], "config": config, "wall_s": wall, "workflows": workflows,
        "steps_per_s": len(completions) / span if span else None,
        "workflows_per_s": workflows / wall if wall else None,
        "recovery_definition": definition, "throughput_back_definition": THROUGHPUT_BACK,
        "recovery": stats,
        "faults": [{**f.to_dict(origin), "throughput_back_s": back[id(f)]} for f in faults if f.kind != "control"],
        "timeline_steps_per_s": timeline(completions, origin_wall),
        **extra, **findings,
    }


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def print_report(report: dict[str, Any], path: Path) -> None:
    print(f"\nChaos run {report['run_id']}: {report['workflows']} workflows in {report['wall_s']:.1f} s "
          f"({_fmt(report['steps_per_s'])} completed steps/s), {report['executions']} executions, "
          f"{report['steps_completed']} completed steps")
    print(f"\n{'fault':<18}{'at s':>8}{'in flight':>11}{'down s':>8}{'recovery s':>12}{'after back s':>14}"
          f"{'tput back s':>13}  detail")
    for f in report["faults"]:
        print(f"{f['kind']:<18}{f['at_s']:>8.1f}{f['in_flight']:>11}{_fmt(f['down_s']):>8}"
              f"{_fmt(f['recovery_s']):>12}{_fmt(f['recovery_after_back_s']):>14}{_fmt(f['throughput_back_s']):>13}"
              f"  {f['detail']}, {f['at_utc'][11:23]}" + (f" NOT RECOVERED ({f['not_recovered']} executions)" if f["not_recovered"] else ""))
    print("\nRecovery time: " + report["recovery_definition"])
    print("Throughput back (tput back): " + report["throughput_back_definition"])
    print(f"\n{'recovery s':<18}{'n':>4}{'p50':>8}{'p95':>8}{'max':>8}{'p50 after back':>16}"
          f"{'tput back p50/p95/max':>24}{'not recovered':>15}")
    for kind, s in report["recovery"].items():
        a, b, t = s["from_fault"], s["from_back"], s["throughput_back"]
        tput = "-" if kind == "control" else f"{_fmt(t['p50'])} / {_fmt(t['p95'])} / {_fmt(t['max'])}"
        print(f"{kind:<18}{a['n']:>4}{_fmt(a['p50']):>8}{_fmt(a['p95']):>8}{_fmt(a['max']):>8}"
              f"{_fmt(b['p50']):>16}{tput:>24}{s['not_recovered']:>15}")
    print("\nChecks:")
    for c in report["checks"]:
        print(f"  [{'ok' if c['ok'] else 'FAILED'}] {c['name']}" + ("" if c["ok"] else f" ({c['failed']})"))
        for example in c["examples"]:
            print(f"      {example[:400]}")
    print(f"\nRe-runs of uncommitted attempts (a run of a step attempt before its outcome committed, "
          f"cut off by a fault, then run again): {report['reruns_of_uncommitted_attempts']}")
    print(f"Runs of attempts whose outcome was never committed: {report['runs_of_attempts_never_committed']}")
    print(f"Attempts failed by the engine (not on purpose), by type: {report['engine_failed_attempts'] or 'none'}")
    if report["driver_errors"]:
        print(f"Driver calls refused or failed (retried): {report['driver_errors']}")
    print(f"\n{'PASS' if report['ok'] else 'FAIL'}; report: {path}")
