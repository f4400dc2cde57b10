"""The workflows one Durable instance knows: name -> definition and compiled machine.

Modules named in ``Durable(workflows=[...])`` are imported on first use (or when a worker
boots), not when ``Durable`` is built, so a workflows module may import the project's Durable
instance without a circular import.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterable

from durable_celery.compiler import compile_workflow
from durable_celery.compiler.ir import StateMachine
from durable_celery.dsl.workflow import Workflow
from durable_celery.errors import DefinitionError, InvalidInput, WorkflowNotFound


class Registry:
    """Name -> definition and compiled machine, for one Durable instance."""

    def __init__(self, sources: Iterable[str | Workflow]) -> None:
        self._pending: list[str | Workflow] = []
        for source in sources:
            if not isinstance(source, (str, Workflow)):
                raise InvalidInput(f"workflows= takes module names or Workflow objects, got {source!r}")
            self._pending.append(source)
        self._workflows: dict[str, Workflow] = {}
        self._machines: dict[str, StateMachine] = {}
        self._lock = threading.RLock()

    def register(self, workflow: Workflow) -> StateMachine:
        """Add a workflow and compile it (raising ``DefinitionError`` if it is invalid)."""
        with self._lock:
            existing = self._workflows.get(workflow.name)
            if existing is not None and existing is not workflow:
                raise DefinitionError(workflow.name, "two different workflows are registered under this name")
            if workflow.open_blocks:
                raise DefinitionError(workflow.name, "registered while a block is still open")
            machine = compile_workflow(workflow)
            self._workflows[workflow.name] = workflow
            self._machines[workflow.name] = machine
            return machine

    def load(self) -> None:
        """Import the pending modules and register every ``Workflow`` they define."""
        with self._lock:
            while self._pending:
                source = self._pending[0]
                if isinstance(source, Workflow):
                    self.register(source)
                else:
                    module = importlib.import_module(source)
                    for workflow in [v for v in vars(module).values() if isinstance(v, Workflow)]:
                        self.register(workflow)
                # dropped only once loaded: a module that failed to import is tried again on
                # the next use instead of silently vanishing with the ones after it
                self._pending.pop(0)

    def get(self, name: str) -> StateMachine | None:
        machine = self._machines.get(name)
        if machine is None and self._pending:
            self.load()
            machine = self._machines.get(name)
        return machine

    def machine_for(self, workflow: Workflow | str) -> StateMachine:
        """The compiled machine of a workflow given as object or name; ``WorkflowNotFound``
        for an unknown name. A Workflow object not yet registered is registered."""
        if isinstance(workflow, Workflow):
            known = self.get(workflow.name)
            if known is not None and self._workflows.get(workflow.name) is workflow:
                return known
            return self.register(workflow)
        if not isinstance(workflow, str):
            raise InvalidInput(f"workflow must be a Workflow or its name, got {workflow!r}")
        machine = self.get(workflow)
        if machine is None:
            raise WorkflowNotFound(workflow)
        return machine

    def sources(self) -> list[str | Workflow]:
        """What was given to ``Durable(workflows=...)`` and not loaded yet."""
        return list(self._pending)

    def queues(self) -> set[str]:
        """The queues the loaded workflows name (their own, and their steps')."""
        with self._lock:
            machines = list(self._machines.values())
        return {q for m in machines for q in (m.queue, *(s.queue for s in m.states.values())) if q}

    def names(self) -> list[str]:
        self.load()
        return sorted(self._machines)

    def workflows(self) -> list[Workflow]:
        self.load()
        return [self._workflows[n] for n in sorted(self._workflows)]
