"""Compiling a Celery canvas (chain, group, chord of task signatures) into a workflow
(``Workflow.from_canvas``), with Celery's own semantics for results and arguments:

- a task gets the previous result as its first positional argument, then the signature's own
  partial args and kwargs; an immutable signature (``.si()``) gets only its own;
- the first task(s) get the workflow input: ``{"args": [...], "kwargs": {...}}``, placed as
  Celery places the arguments of ``canvas.apply_async(args, kwargs)``;
- a chain becomes steps in order, a group a ``parallel`` block (``fail_fast``) whose result is
  the list of its members' results in order, a chord that block followed by its body;
- the context between steps is ``{"result": value}``; the last one is the execution's context.

A signature is read as the dict it is (``subtask_type``, ``kwargs.tasks``, ``options``, ...), so
this module imports nothing from Celery, like the rest of the DSL.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from durable_celery.dsl.tasks import call_task, is_task, parameters, short_name
from durable_celery.errors import DefinitionError, InvalidInput

if TYPE_CHECKING:
    from durable_celery.dsl.workflow import Workflow

#: Options a signature may carry that mean nothing in a workflow: steps are routed by the
#: workflow (``queue=`` on the workflow or in ``step_options``), and Celery sets the ids itself
#: when it freezes a canvas.
IGNORED_OPTIONS = frozenset({"queue", "routing_key", "exchange", "priority", "serializer", "compression",
                             "task_id", "reply_to", "group_id", "group_index", "root_id", "parent_id",
                             "stamped_headers"})
#: Options that change what runs or when: refused, with what to use instead.
REFUSED_OPTIONS = {
    "countdown": "delays are not supported: use durable_celery.wait.sleep() in a step, or start(scheduled_at=...)",
    "eta": "delays are not supported: use durable_celery.wait.sleep() in a step, or start(scheduled_at=...)",
    "link": "callbacks are not supported: make the callback a step of the canvas (chain it)",
    "link_error": "error callbacks are not supported: use compensations={step: handler}",
    "time_limit": "use step_options={step: {'timeout': ...}}",
    "soft_time_limit": "use step_options={step: {'timeout': ...}}",
    "retry": "use step_options={step: {'retry': Retry(...)}}",
    "retry_policy": "use step_options={step: {'retry': Retry(...)}}",
    "max_retries": "use step_options={step: {'retry': Retry(...)}}",
}
#: Canvas types that cannot be compiled, by the name of the Celery built-in task they run.
REFUSED_TYPES = {
    "celery.chunks": "chunks is not supported: use a foreach block over the items",
    "celery.map": "xmap (task.map) is not supported: use a foreach block over the items",
    "celery.starmap": "xstarmap (task.starmap) is not supported: use a foreach block over the items",
}
#: Options ``step_options`` may set for a step made from a task.
STEP_OPTIONS = frozenset({"retry", "timeout", "queue"})


def build_from_canvas(wf: Workflow, canvas: Any, compensations: Mapping[str, Any],
                      step_options: Mapping[str, Mapping[str, Any]]) -> None:
    """Define the steps and blocks of ``canvas`` on the empty workflow ``wf``.

    Raises:
        DefinitionError: an unsupported canvas type or option, a signature whose task is not
            registered, an empty group or chain, a chord without a body, or ``compensations`` /
            ``step_options`` naming no step of the canvas.
    """
    if not isinstance(compensations, Mapping) or not isinstance(step_options, Mapping):
        raise DefinitionError(wf.name, "compensations= and step_options= must be dicts keyed by step name")
    converter = _Converter(wf, compensations, step_options)
    converter.node(canvas, first=True, where="the canvas")
    for mapping, what in ((compensations, "compensations"), (step_options, "step_options")):
        unknown = sorted(set(mapping) - set(converter.steps))
        if unknown:
            raise DefinitionError(wf.name, f"{what} names no step of the canvas: {', '.join(unknown)} "
                                           f"(its steps: {', '.join(converter.steps)})")
    for step, handler in compensations.items():
        wf.compensation(name=_undo(step))(Undo(wf.name, step, handler))


class _Converter:
    """Walks the canvas depth first, in definition order, defining steps and blocks on ``wf``."""

    def __init__(self, wf: Workflow, compensations: Mapping[str, Any],
                 step_options: Mapping[str, Mapping[str, Any]]) -> None:
        self.wf = wf
        self.compensations = compensations
        self.step_options = step_options
        self.names: set[str] = set()
        #: the steps made from tasks, in definition order
        self.steps: list[str] = []

    def unique(self, base: str) -> str:
        """``base``, else ``base_2``, ``base_3``, ...: stable for a given canvas."""
        name, n = base, 1
        while name in self.names:
            n += 1
            name = f"{base}_{n}"
        self.names.add(name)
        return name

    def node(self, sig: Any, *, first: bool, where: str) -> str:
        """Define ``sig`` in the body being defined; returns its name (its result key in a group)."""
        if not isinstance(sig, Mapping):
            raise DefinitionError(self.wf.name, f"{where} is not a Celery signature: {sig!r}")
        kind = sig.get("subtask_type")
        label = f"{where} ({_describe(sig)})"
        self._check_options(sig, label)
        if kind is None and sig.get("task") in REFUSED_TYPES:
            raise DefinitionError(self.wf.name, f"{label}: {REFUSED_TYPES[sig['task']]}")
        if kind is None and str(sig.get("task")).startswith("celery."):
            raise DefinitionError(self.wf.name, f"{label}: Celery's built-in tasks are not supported")
        if kind is None:
            return self._task(sig, first, label)
        if kind == "chain":
            tasks = self._members(sig, "tasks", label)
            names = [self.node(t, first=first and i == 0, where=f"{where}, chain member {i + 1}")
                     for i, t in enumerate(tasks)]
            return names[-1]
        if kind == "group":
            return self._group(self._members(sig, "tasks", label), first, where, "group")
        if kind == "chord":
            header = sig["kwargs"].get("header")
            if isinstance(header, Mapping) and header.get("subtask_type") == "group":
                header = header["kwargs"]["tasks"]
            members = list(header or ())
            if not members:
                raise DefinitionError(self.wf.name, f"{label}: a chord needs at least one task in its header")
            body = sig["kwargs"].get("body")
            if body is None:
                raise DefinitionError(self.wf.name, f"{label}: a chord needs a body")
            self._group(members, first, where, "chord")
            return self.node(body, first=False, where=f"{where}, chord body")
        raise DefinitionError(self.wf.name, f"{label}: canvas type {kind!r} is not supported "
                                            "(only task signatures, chain, group and chord are)")

    def _members(self, sig: Mapping[str, Any], key: str, label: str) -> list[Any]:
        members = list(sig["kwargs"].get(key) or ())
        if not members:
            raise DefinitionError(self.wf.name, f"{label}: an empty {sig.get('subtask_type')} cannot be compiled")
        return members

    def _group(self, members: list[Any], first: bool, where: str, kind: str) -> str:
        """A parallel block, one branch per member (a chain or chord member runs as a sequence)."""
        name = self.unique(kind)
        collect = CollectResults()
        with self.wf.parallel(on_error="fail_fast", into=collect, name=name):
            for i, member in enumerate(self._flat(members, where)):
                at = f"{where}, {kind} member {i + 1}"
                if isinstance(member, Mapping) and member.get("subtask_type") in ("chain", "chord"):
                    collect.keys.append(self._sequence(member, first, at))
                else:
                    collect.keys.append(self.node(member, first=first, where=at))
        return name

    def _flat(self, members: list[Any], where: str) -> list[Any]:
        """A group inside a group adds its members to the outer one, as Celery runs it: their
        results are items of the outer group's list, not a nested list."""
        flat: list[Any] = []
        for member in members:
            if isinstance(member, Mapping) and member.get("subtask_type") == "group":
                self._check_options(member, f"{where} (group)")
                flat.extend(self._flat(self._members(member, "tasks", f"{where} (group)"), where))
            else:
                flat.append(member)
        return flat

    def _sequence(self, sig: Mapping[str, Any], first: bool, where: str) -> str:
        """A chain inside a group: one parallel branch running its steps in order (a branch
        block with only a default clause is a plain sequence)."""
        name = self.unique(str(sig.get("subtask_type")))
        with self.wf.branch(on=_in_order, name=name) as seq, seq.default():
            self.node(sig, first=first, where=where)
        return name

    def _task(self, sig: Mapping[str, Any], first: bool, label: str) -> str:
        task = _task_of(self.wf.name, sig, label)
        name = self.unique(short_name(task))
        self.steps.append(name)
        options = dict(self.step_options.get(name) or {})
        unknown = set(options) - STEP_OPTIONS
        if unknown:
            raise DefinitionError(self.wf.name, f"step_options for {name!r} may set {', '.join(sorted(STEP_OPTIONS))}, "
                                                f"not {', '.join(sorted(unknown))}", name)
        if name in self.compensations:
            options["compensate"] = _undo(name)
        fn = CanvasStep(name, task, tuple(sig.get("args") or ()), dict(sig.get("kwargs") or {}),
                        bool(sig.get("immutable")), first)
        self.wf.step(name=name, **options)(fn)
        return name

    def _check_options(self, sig: Mapping[str, Any], label: str) -> None:
        for option, value in (sig.get("options") or {}).items():
            if option in IGNORED_OPTIONS or (option == "chord" and value is None):
                continue
            if option == "immutable":  # kept in options by some Celery versions
                continue
            hint = REFUSED_OPTIONS.get(option, f"supported options (ignored): {', '.join(sorted(IGNORED_OPTIONS))}")
            raise DefinitionError(self.wf.name, f"{label}: option {option!r} is not supported: {hint}")


class CanvasStep:
    """The step of one task signature: its arguments as Celery builds them, ``{"result": value}`` out."""

    def __init__(self, step: str, task: Any, args: tuple[Any, ...], kwargs: dict[str, Any], immutable: bool,
                 first: bool) -> None:
        self.step = step
        self.task = task
        self.args = args
        self.kwargs = kwargs
        self.immutable = immutable
        #: the first task(s) of the canvas: they get the workflow input, the others the previous result
        self.first = first
        self.signature = parameters(task)
        self.__name__ = step

    def __call__(self, ctx: dict[str, Any]) -> dict[str, Any]:
        if self.immutable:
            args, kwargs, where = self.args, self.kwargs, "its immutable signature"
        elif self.first:
            given_args, given_kwargs = canvas_input(self.step, ctx)
            args, kwargs = (*given_args, *self.args), {**self.kwargs, **given_kwargs}
            where = "the workflow input and its signature"
        else:
            args, kwargs, where = (ctx["result"], *self.args), self.kwargs, "the previous result and its signature"
        return {"result": call_task(self.task, self.step, args, kwargs, self.signature, where)}


def canvas_input(step: str, ctx: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """The workflow input of a canvas: ``{"args": [...], "kwargs": {...}}``, both optional."""
    unknown = sorted(set(ctx) - {"args", "kwargs"})
    args, kwargs = ctx.get("args", []), ctx.get("kwargs", {})
    if unknown or not isinstance(args, list) or not isinstance(kwargs, dict):
        raise InvalidInput(f"step {step!r}: the input of a workflow made from a canvas is "
                           f"{{'args': [...], 'kwargs': {{...}}}} (both optional), got {ctx!r}")
    return args, kwargs


class CollectResults:
    """A group's ``into``: the list of its members' results, in member order."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    def __call__(self, ctx: dict[str, Any], results: dict[str, Any]) -> dict[str, Any]:
        return {"result": [results[key][1]["result"] for key in self.keys]}


class Undo:
    """A compensation given to ``from_canvas``: a task (its body run in-process) or a function,
    called with the result of the step it undoes; what it returns is recorded as ``{"result": ...}``."""

    def __init__(self, workflow: str, step: str, handler: Any) -> None:
        if not callable(handler):
            raise DefinitionError(workflow, f"the compensation of {step!r} must be a task or a function, "
                                            f"got {handler!r}", step)
        self.handler = handler
        self.__name__ = _undo(step)

    def __call__(self, ctx: dict[str, Any]) -> dict[str, Any]:
        # ctx is what the step returned ({"result": ...}); for a step whose outcome is unknown
        # (its worker died during a stop) it is what the step was given.
        return {"result": self.handler(ctx.get("result"))}


def _undo(step: str) -> str:
    return f"undo_{step}"


def _in_order(ctx: dict[str, Any]) -> None:
    """The selector of a sequence block: no case matches, its default clause runs."""
    return None


def _task_of(workflow: str, sig: Mapping[str, Any], label: str) -> Any:
    """The task object of a signature: the one it was made from, else the app's task of that name."""
    try:
        task = sig.type  # type: ignore[attr-defined]
    except AttributeError:
        raise DefinitionError(workflow, f"{label}: give signatures made by task.s() / task.si() / "
                                        "signature(), not plain dicts") from None
    except Exception as exc:  # noqa: BLE001 - celery.exceptions.NotRegistered, or no app to ask
        raise DefinitionError(workflow, f"{label}: task {sig.get('task')!r} is not registered ({exc!r})") from None
    if not is_task(task):
        raise DefinitionError(workflow, f"{label}: {task!r} is not a Celery task")
    return task


def _describe(sig: Mapping[str, Any]) -> str:
    kind = sig.get("subtask_type")
    return f"task {sig.get('task')!r}" if kind is None else str(kind)
