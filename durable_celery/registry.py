"""The workflows one Durable instance knows: name -> definition and compiled machine.

Where definitions come from (``Durable(workflows=...)``, ``Durable.autodiscover_workflows``,
``Durable.register``):

- a module name: the module is imported and every module-level ``Workflow`` in it registered;
- a module object: the same, for a module loaded some other way (a plugin loaded from a file);
- a ``Workflow`` object;
- a callable taking no arguments that returns an iterable of the above; ``workflows=`` may
  itself be such a callable;
- a discovery (``autodiscover_workflows``): ``<package>.<related_name>`` for each package,
  imported when that module exists, as Celery's ``app.autodiscover_tasks`` does for tasks.

Nothing but ``register`` is loaded when ``Durable`` is built: sources are loaded in order on
first use (a name not known yet, the full list) or when a worker boots. So a workflows module
may import the project's Durable instance without a circular import, and a plugin system may
finish loading its plugins after the Durable instance is built. A source that fails to load
stays pending and is tried again on the next use; a callable that returned is not called again.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Union, cast

from durable_celery.compiler import compile_workflow
from durable_celery.compiler.ir import StateMachine
from durable_celery.dsl.workflow import Workflow
from durable_celery.errors import DefinitionError, InvalidInput, WorkflowNotFound

#: What a source stands for once loaded: a module name, a module, a Workflow.
Loaded = Union[str, ModuleType, Workflow]
#: One item of ``workflows=``: a loaded source, or a callable returning several.
Source = Union[Loaded, Callable[[], Iterable[Loaded]]]
#: What ``workflows=`` takes: sources, one source, or a callable returning sources.
Sources = Union[Iterable[Source], Source]


@dataclass(frozen=True)
class Discovery:
    """``<package>.<related_name>`` for each package listed, or returned by ``packages()``
    (called at load)."""

    packages: tuple[str, ...] | Callable[[], Iterable[str]]
    related_name: str


@dataclass(frozen=True)
class Related:
    """One package's ``<package>.<related_name>`` module: loaded if it exists, else skipped."""

    package: str
    related_name: str


Pending = Union[Source, Discovery, Related]


class Registry:
    """Name -> definition and compiled machine, for one Durable instance."""

    def __init__(self, sources: Sources) -> None:
        single = isinstance(sources, (str, ModuleType, Workflow)) or callable(sources)
        items = [cast(Source, sources)] if single else cast(Iterable[Source], sources)
        self._pending: list[Pending] = []
        for source in items:
            if not isinstance(source, (str, ModuleType, Workflow)) and not callable(source):
                raise InvalidInput("workflows= takes module names, modules, Workflow objects or callables "
                                   f"returning them, got {source!r}")
            self._pending.append(source)
        #: the Workflow objects given directly, whose queues are declared when the app is attached
        self.given = tuple(s for s in self._pending if isinstance(s, Workflow))
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

    def discover(self, packages: Iterable[str] | Callable[[], Iterable[str]], related_name: str) -> None:
        """Add ``<package>.<related_name>`` for each package (or each one ``packages()``
        returns when the sources are loaded), loaded with the other sources."""
        if not isinstance(related_name, str) or not related_name or related_name.startswith("."):
            raise InvalidInput(f"related_name must be a module name such as 'workflows', got {related_name!r}")
        listed = packages if callable(packages) else tuple(_package_names(packages))
        with self._lock:
            self._pending.append(Discovery(listed, related_name))

    def load(self) -> None:
        """Load the pending sources, in order, and register every ``Workflow`` they define."""
        with self._lock:
            while self._pending:
                source = self._pending[0]
                if isinstance(source, Workflow):
                    self.register(source)
                elif isinstance(source, ModuleType):
                    self._register_module(source)
                elif isinstance(source, str):
                    self._register_module(importlib.import_module(source))
                elif isinstance(source, Related):
                    module = find_related(source.package, source.related_name)
                    if module is not None:
                        self._register_module(module)
                else:
                    # what it stands for takes its place and is loaded next, in order
                    self._pending[0:1] = _expand(source)
                    continue
                # dropped only once loaded: a module that failed to import is tried again on
                # the next use instead of silently vanishing with the ones after it
                self._pending.pop(0)

    def _register_module(self, module: ModuleType) -> None:
        for workflow in [v for v in vars(module).values() if isinstance(v, Workflow)]:
            self.register(workflow)

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


def find_related(package: str, related_name: str) -> ModuleType | None:
    """Import ``<package>.<related_name>``; None if ``package`` has no such module (or is a
    plain module). A package that cannot be imported, or an error raised while the related
    module runs, propagates: only the module's absence is skipped."""
    parent = importlib.import_module(package)
    if not hasattr(parent, "__path__"):
        return None
    name = f"{package}.{related_name}"
    if importlib.util.find_spec(name) is None:
        return None
    return importlib.import_module(name)


def _package_names(packages: Any) -> list[str]:
    if isinstance(packages, str) or not isinstance(packages, Iterable):
        raise InvalidInput(f"packages must be a list of package names or a callable returning one, got {packages!r}")
    names = list(packages)
    for name in names:
        if not isinstance(name, str) or not name:
            raise InvalidInput(f"a package to discover workflows in must be a module name, got {name!r}")
    return names


def _expand(source: Callable[[], Iterable[Any]] | Discovery) -> list[Pending]:
    """Call a callable source (or a discovery's ``packages``) and check what it returned."""
    if isinstance(source, Discovery):
        names = source.packages() if callable(source.packages) else source.packages
        return [Related(name, source.related_name) for name in dict.fromkeys(_package_names(names))]
    returned = source()
    if isinstance(returned, (str, ModuleType, Workflow)):
        returned = [returned]
    if not isinstance(returned, Iterable):
        raise InvalidInput(f"{source!r} in workflows= returned {returned!r}, not a list of module names, "
                           "modules or Workflow objects")
    loaded: list[Pending] = []
    for item in returned:
        if not isinstance(item, (str, ModuleType, Workflow)):
            raise InvalidInput(f"{source!r} in workflows= returned {item!r}; it may return module names, "
                               "modules and Workflow objects")
        loaded.append(item)
    return loaded
