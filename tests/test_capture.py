"""Output capture on a real worker whose steps run side by side: Celery's threads pool runs
several steps at once in one process, and each attempt keeps only what its own step printed and
logged."""

from __future__ import annotations

from collections.abc import Callable

from tests.conftest import Project


def test_steps_running_at_once_on_a_threads_pool_each_keep_only_their_own_output(
        project_factory: Callable[..., Project]) -> None:
    p = project_factory()
    # Given a worker running four steps at once in threads of one process
    worker = p.worker(pool="threads", concurrency=4)
    # When six executions each print and log their own id, slowly, at the same time
    rounds = 6
    ids = [p.durable.start("capture_chatter", {"rounds": rounds, "pause": 0.1}) for _ in range(6)]
    executions = [p.wait(execution_id, timeout=60) for execution_id in ids]
    # Then each attempt's logs hold its own lines, all of them, and nothing else
    for execution in executions:
        assert execution.status == "completed", execution.error
        [attempt] = execution.steps
        me = execution.id
        expected = []
        for i in range(rounds):
            expected += [("PRINT", "stdout", f"print {i} from {me}"), ("WARNING", "proj.capture", f"log {i} from {me}")]
        expected.append(("PRINT", "stdout", f"last word from {me}"))
        assert [(e["level"], e["logger"], e["message"]) for e in attempt.logs] == expected
    # And the steps did overlap (four threads, six slow steps)
    spans = sorted((e.steps[0].started_at, e.steps[0].completed_at) for e in executions)
    assert any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:]))
    # And what they printed still reached the worker's own output, as before
    assert f"print {rounds - 1} from {ids[0]}" in worker.log()
