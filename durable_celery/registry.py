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

Versions (docs/deploys.md): one name may have several definitions when each carries its own
``Workflow(version=...)`` label. The highest label is the *current* definition: new executions
start on it, and ``get(name)`` returns it. ``get(name, version_hash)`` returns the definition
whose compiled machine has that hash when one is registered (an execution keeps running on the
definition it started on), else the current one.
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
        #: the current (highest-labelled) definition and machine of each name
        self._workflows: dict[str, Workflow] = {}
        self._machines: dict[str, StateMachine] = {}
        #: every registered definition of each name, lowest label first
        self._versions: dict[str, list[tuple[Workflow, StateMachine]]] = {}
        self._lock = threading.RLock()

    def register(self, workflow: Workflow) -> StateMachine:
        """Add a workflow and compile it (raising ``DefinitionError`` if it is invalid)."""
        with self._lock:
            versions = self._versions.get(workflow.name, [])
            for known, machine in versions:
                if known is workflow:
                    return machine
            for known, _ in versions:
                if known.version == workflow.version:
                    raise DefinitionError(workflow.name, "two different workflows are registered under this name"
                                          + ("" if workflow.version is None else
                                             f" with one version label {workflow.version!r}")
                                          + "; give each definition its own Workflow(version=...)")
                if _label_kind(known.version) and _label_kind(workflow.version) \
                        and _label_kind(known.version) != _label_kind(workflow.version):
                    raise DefinitionError(workflow.name, f"version labels {known.version!r} and {workflow.version!r} "
                                          "cannot be ordered: use ints or strings for every version of a workflow")
            if workflow.open_blocks:
                raise DefinitionError(workflow.name, "registered while a block is still open")
            machine = compile_workflow(workflow)
            versions = sorted([*versions, (workflow, machine)], key=lambda pair: label_order(pair[0].version))
            self._versions[workflow.name] = versions
            self._workflows[workflow.name], self._machines[workflow.name] = versions[-1]
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

    def get(self, name: str, version_hash: str | None = None) -> StateMachine | None:
        """The machine an execution of ``name`` runs on: the registered one whose hash is
        ``version_hash`` (the execution's stored version) if any, else the current one."""
        machine = self._machines.get(name)
        if machine is None and self._pending:
            self.load()
            machine = self._machines.get(name)
        if version_hash is not None and machine is not None and machine.version != version_hash:
            for _, kept in self._versions.get(name, ()):
                if kept.version == version_hash:
                    return kept
        return machine

    def versions(self, name: str) -> list[StateMachine]:
        """Every registered machine of ``name``, lowest label first (the current one last)."""
        self.get(name)
        return [machine for _, machine in self._versions.get(name, ())]

    def known_labels(self) -> dict[tuple[str, str], int | str | None]:
        """{(name, version hash): label} of the machines registered so far (nothing is loaded)."""
        with self._lock:
            return {(name, machine.version): machine.label for name, versions in self._versions.items()
                    for _, machine in versions}

    def all_machines(self) -> list[StateMachine]:
        """Every registered machine of every workflow, by name then label."""
        self.load()
        return [machine for name in sorted(self._versions) for _, machine in self._versions[name]]

    def machine_for(self, workflow: Workflow | str) -> StateMachine:
        """The compiled machine of a workflow given as object or name; ``WorkflowNotFound``
        for an unknown name. A Workflow object not yet registered is registered."""
        if isinstance(workflow, Workflow):
            self.get(workflow.name)
            return self.register(workflow)  # a registered definition (any version) returns its machine
        if not isinstance(workflow, str):
            raise InvalidInput(f"workflow must be a Workflow or its name, got {workflow!r}")
        machine = self.get(workflow)
        if machine is None:
            raise WorkflowNotFound(workflow)
        return machine

    def queues(self) -> set[str]:
        """The queues the loaded workflows name (their own, and their steps')."""
        with self._lock:  # kept versions too: their executions' steps run on their queues
            machines = [machine for versions in self._versions.values() for _, machine in versions]
        return {q for m in machines for q in (m.queue, *(s.queue for s in m.states.values())) if q}

    def names(self) -> list[str]:
        self.load()
        return sorted(self._machines)

    def workflows(self) -> list[Workflow]:
        self.load()
        return [self._workflows[n] for n in sorted(self._workflows)]


def _label_kind(label: int | str | None) -> str:
    return "" if label is None else "int" if isinstance(label, int) else "str"


def label_order(label: int | str | None) -> tuple[int, Any]:
    """How version labels order: no label first (the definition before versions were named),
    then ints by value or strings by text (one workflow's labels are all ints or all strings)."""
    return (0, 0) if label is None else (1, label)


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
