"""``context.idempotency_key()``: one key per visit of a step, whatever re-runs it."""

from __future__ import annotations

from collections.abc import Callable

from tests.conftest import Project

Factory = Callable[..., Project]


def test_a_key_is_the_same_across_retries_and_resumes_and_differs_between_visits(project_factory: Factory) -> None:
    p = project_factory("redis")
    p.worker()
    p.beat()
    execution = p.wait(p.durable.start("keyed", {}), timeout=30)
    assert execution.status == "completed", execution.error
    notes = p.notes(execution.id)
    by_kind: dict[str, dict[str, int]] = {}
    for note, count in notes.items():
        kind, key = note.split(":", 1)
        by_kind.setdefault(kind, {})[key] = count
    # Both attempts of the retried step saw one key
    assert list(by_kind["retry"].values()) == [2]
    # Each of the three loop visits has its own key
    assert sorted(by_kind["loop"].values()) == [1, 1, 1]
    # Each foreach iteration has its own key, the same on its first run and when it resumes after
    # its sleep (which runs the step again from its top: three records)
    assert sorted(by_kind["item"].values()) == [3, 3]
    keys = [key for kind in by_kind.values() for key in kind]
    assert len(keys) == len(set(keys)) == 6 and all(len(key) <= 64 for key in keys)
