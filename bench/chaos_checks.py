"""The chaos run's checks, over the engine's tables and the steps' recorded side effects
(``bench/chaos_app.py``), read once every process has stopped.

* **outcome**: every top-level execution ended with the status and the context its input
  determines; a saga that fails on purpose ran its compensations, newest first;
* **final**: no execution (branches, iterations and child workflows included) is left active;
* **one checkpoint per step**: every step of every execution has exactly one completed attempt
  (``step_executions``), and each tree completed exactly the steps its input determines;
* **no committed step ran again**: no run of a step attempt started after that attempt's outcome
  was committed, and every completed attempt ran (has a side effect). Several runs of one
  attempt before its commit are a killed worker's step run again: they are counted, as
  *re-runs of uncommitted attempts*, and do not fail the run.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench.chaos_app import Expected

FINAL = {"completed", "failed", "cancelled", "compensated", "compensation_failed"}
SHOWN = 5  # examples per failed check


@dataclass
class Check:
    name: str
    failures: list[str] = field(default_factory=list)
    count: int = 0  # how many failed

    @property
    def ok(self) -> bool:
        return self.count == 0

    def fail(self, message: str) -> None:
        self.count += 1
        if len(self.failures) < SHOWN:
            self.failures.append(message)


@dataclass
class Findings:
    checks: list[Check]
    reruns_uncommitted: int  # extra runs of an attempt before its outcome committed
    runs_never_committed: int  # runs of an attempt that has no recorded outcome at all
    engine_failed_attempts: Counter[str]  # failed attempts beyond the deliberate ones, by error type
    steps_completed: int
    executions: int

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [{"name": c.name, "ok": c.ok, "failed": c.count, "examples": c.failures}
                                          for c in self.checks],
                "reruns_of_uncommitted_attempts": self.reruns_uncommitted,
                "runs_of_attempts_never_committed": self.runs_never_committed,
                "engine_failed_attempts": dict(self.engine_failed_attempts),
                "steps_completed": self.steps_completed, "executions": self.executions}


def read_effects(directory: Path) -> dict[tuple[str, str, int], list[dict[str, Any]]]:
    """Every recorded side effect, by (execution id, step, attempt)."""
    found: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
    for path in sorted(directory.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                found[(row["e"], row["s"], int(row["a"]))].append(row)
    return found


def _rows(conn: Any, query: str, schema: str) -> list[Any]:
    return list(conn.execute(text(query.replace("{schema}", f'"{schema}"'))))


def check(db: Any, schema: str, expected: dict[str, tuple[str, Expected]], effects_dir: Path) -> Findings:
    """Run every check. ``expected``: top-level execution id -> (its workflow kind, what it must end with)."""
    with db.connect() as conn:
        executions = _rows(conn, "SELECT id, workflow, status, parent_id, context, error, compensation_results, "
                                 "completed_at FROM {schema}.workflow_executions", schema)
        steps = _rows(conn, "SELECT execution_id, step_name, attempt, status, completed_at, is_compensation, error "
                            "FROM {schema}.step_executions", schema)
    final = Check("no execution left non-final")
    children: dict[str, list[Any]] = defaultdict(list)
    for row in executions:
        if row.parent_id:
            children[row.parent_id].append(row)
    for row in executions:
        if row.status not in FINAL:
            final.fail(f"{row.workflow} {row.id}: {row.status}{_children(children[row.id])}")
    once, engine_failed = _checkpoints(executions, steps, expected)
    again, reruns, never = _runs(steps, read_effects(effects_dir))
    return Findings([_outcomes(executions, expected), final, once, again], reruns, never, engine_failed,
                    sum(s.status == "completed" for s in steps), len(executions))


def _children(rows: list[Any]) -> str:
    """Its children's statuses and when the last one ended, to tell a lost join from a slow one."""
    if not rows:
        return ""
    ended = [r.completed_at for r in rows if r.completed_at is not None]
    last = f", the last ended at {max(ended).isoformat()}" if ended else ""
    return f"; children: {dict(Counter(r.status for r in rows))}{last}"


def _outcomes(executions: list[Any], expected: dict[str, tuple[str, Expected]]) -> Check:
    outcome = Check("every workflow ended with the expected status and result")
    by_id = {row.id: row for row in executions}
    for execution_id, (kind, want) in expected.items():
        row = by_id.get(execution_id)
        if row is None:
            outcome.fail(f"{kind} {execution_id}: no such execution")
        elif row.status != want.status:
            outcome.fail(f"{kind} {execution_id}: {row.status} (expected {want.status}), error {row.error}")
        elif want.context is not None and row.context != want.context:
            outcome.fail(f"{kind} {execution_id}: context {row.context} (expected {want.context})")
        elif want.compensations:
            ran = tuple((r["step"], r["compensation"]) for r in row.compensation_results or []
                        if r["status"] == "completed")
            if ran != want.compensations:
                outcome.fail(f"{kind} {execution_id}: compensations {row.compensation_results} "
                             f"(expected {want.compensations})")
    return outcome


def _checkpoints(executions: list[Any], steps: list[Any],
                 expected: dict[str, tuple[str, Expected]]) -> tuple[Check, Counter[str]]:
    """One completed attempt per step of each execution, and the steps each tree must complete;
    also the attempts that failed for another reason than on purpose, by error type."""
    parent = {row.id: row.parent_id for row in executions}

    def top(execution_id: str) -> str:
        while parent.get(execution_id):
            execution_id = parent[execution_id]
        return execution_id

    once = Check("every step has exactly one committed (completed) checkpoint")
    completed: Counter[tuple[str, str, bool]] = Counter()
    per_tree: dict[str, Counter[str]] = defaultdict(Counter)
    engine_failed: Counter[str] = Counter()
    for s in steps:
        if s.status == "completed":
            completed[(s.execution_id, s.step_name, s.is_compensation)] += 1
            if not s.is_compensation:
                per_tree[top(s.execution_id)][s.step_name] += 1
        elif s.status == "failed" and "on purpose" not in str((s.error or {}).get("message", "")):
            engine_failed[(s.error or {}).get("type", "?")] += 1
    for (execution_id, step, _), n in completed.items():
        if n != 1:
            once.fail(f"{execution_id} {step}: {n} completed checkpoints")
    for execution_id, (kind, want) in expected.items():
        if execution_id in parent and per_tree[execution_id] != want.steps:
            once.fail(f"{kind} {execution_id}: completed steps {dict(per_tree[execution_id])} "
                      f"(expected {dict(want.steps)})")
    return once, engine_failed


def _runs(steps: list[Any], recorded: dict[tuple[str, str, int], list[dict[str, Any]]]) -> tuple[Check, int, int]:
    """No run of an attempt started after its outcome committed, and every completed attempt ran;
    returns the check, the re-runs of attempts before their commit, and the runs of attempts
    that never committed an outcome."""
    again = Check("no committed step ran again")
    reruns = 0
    committed = set()
    for s in steps:
        if s.status not in ("completed", "failed"):
            continue
        key = (s.execution_id, s.step_name, s.attempt)
        committed.add(key)
        runs = recorded.get(key, [])
        if s.status == "completed" and not runs:
            again.fail(f"{s.execution_id} {s.step_name} attempt {s.attempt}: completed, but its body never ran")
            continue
        at = s.completed_at.timestamp() if isinstance(s.completed_at, datetime) else float("inf")
        late = [r for r in runs if r["t0"] > at]
        for r in late:
            again.fail(f"{s.execution_id} {s.step_name} attempt {s.attempt}: a run started "
                       f"{r['t0'] - at:.3f} s after its checkpoint (pid {r['pid']})")
        reruns += max(0, len(runs) - len(late) - 1)
    never = sum(len(runs) for key, runs in recorded.items() if key not in committed)
    return again, reruns, never
