"""The chaos run's classification of step runs and its figures (``bench/chaos_checks.py``,
``bench/chaos_report.py``), on hand-made rows: no services needed."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

from bench.chaos_app import KINDS, expect, workflow_input
from bench.chaos_checks import _checkpoints, _runs
from bench.chaos_faults import Fault
from bench.chaos_report import percentiles, throughput_back, timeline

T = 1_000_000.0  # an epoch second


def attempt(execution: str, step: str, n: int, status: str, at: float) -> Any:
    return SimpleNamespace(execution_id=execution, step_name=step, attempt=n, status=status,
                           completed_at=datetime.fromtimestamp(at, timezone.utc), is_compensation=False, error=None)


def run(t0: float) -> dict[str, Any]:
    return {"t0": t0, "pid": 1}


def test_runs_of_an_attempt_before_its_commit_are_re_runs_and_a_run_after_it_fails_the_check() -> None:
    steps = [attempt("e", "a", 1, "completed", T + 10), attempt("e", "b", 1, "completed", T + 20)]
    recorded = {("e", "a", 1): [run(T + 1), run(T + 5)],  # cut off once, then run again: allowed
                ("e", "b", 1): [run(T + 15), run(T + 21)],  # a run started after b's commit: not allowed
                ("e", "c", 1): [run(T + 30)]}  # never committed
    check, reruns, never = _runs(steps, recorded)
    assert reruns == 1 and never == 1
    assert check.count == 1 and "e b attempt 1: a run started 1.000 s after its checkpoint" in check.failures[0]


def test_a_completed_attempt_without_a_run_fails_the_check() -> None:
    check, _, _ = _runs([attempt("e", "a", 1, "completed", T)], {})
    assert check.count == 1 and "never ran" in check.failures[0]


def test_each_step_must_complete_once_and_each_tree_exactly_its_expected_steps() -> None:
    executions = [SimpleNamespace(id="top", parent_id=None), SimpleNamespace(id="item", parent_id="top")]
    steps = [attempt("top", "f_start", 1, "completed", T), attempt("item", "f_item", 1, "completed", T),
             attempt("item", "f_item", 1, "completed", T), attempt("top", "f_sum", 1, "completed", T)]
    want = expect("foreach", {"n": 0, "items": 1})
    check, failed = _checkpoints(executions, steps, {"top": ("foreach", want)})
    assert check.count == 2  # f_item completed twice in its iteration, so the tree has one f_item too many
    assert failed == Counter()


def test_only_a_saga_failing_on_purpose_ends_otherwise_than_completed_and_it_is_compensated_newest_first() -> None:
    for kind in KINDS:
        for pick in (lambda options: options[0], lambda options: options[-1]):
            want = expect(kind, workflow_input(kind, 7, pick))
            failing = kind == "saga" and want.failures["s_ship"] == 2
            assert want.status == ("compensated" if failing else "completed")
            assert want.compensations == ((("s_charge", "s_refund"), ("s_book", "s_unbook")) if failing else ())


def test_throughput_back_is_when_the_rate_returns_to_most_of_the_rate_before_the_fault() -> None:
    # 10 steps/s for 10 s, nothing for 4 s after the fault, then 10 steps/s again
    completions = [T + i / 10 for i in range(100)] + [T + 14 + i / 10 for i in range(100)]
    fault = Fault("worker-kill", at=0.0, wall=T + 10, in_flight={})
    # from T+13.5 the next 3 s hold 25 steps, at least 80 % of 30; from T+13.25 only 23
    assert throughput_back(completions, fault) == 3.5
    assert timeline(completions, T)[:3] == [10, 10, 10]
    assert percentiles([3.0, 1.0, 2.0]) == {"n": 3, "p50": 2.0, "p95": 3.0, "max": 3.0}
