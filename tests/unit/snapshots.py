"""An execution as the engine's decisions see it, for the unit tests of those decisions."""

from __future__ import annotations

from typing import Any

from durable_celery.compiler.ir import StateMachine
from durable_celery.engine.statuses import ExecutionStatus
from durable_celery.engine.values import Snapshot


def snap(m: StateMachine, node: str | None, **changes: Any) -> Snapshot:
    """A running, leased top-level execution of ``m`` standing on ``node`` at seq 4, with ``changes``."""
    values: dict[str, Any] = dict(
        id="e1", workflow=m.workflow, version=m.version, kind="workflow", status=ExecutionStatus.RUNNING,
        queue="durable", priority=0, seq=4, entered_seq=4, attempt=1, current_node=node,
        node_shape=m.states[node].shape if node in m.states else None, context={"kind": "a"}, input={},
        lease_owner="t")
    values.update(changes)
    return Snapshot(**values)
