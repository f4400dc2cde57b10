"""Steps whose body is an existing Celery task (``wf.task_step(task)``).

The task's body runs in-process, as the step: ``task(*args, **kwargs)`` is Celery's own direct
call (``Task.__call__``), so ``self.request`` and ``current_task`` work in a bound task, and no
message is sent. The task object is not changed: ``task.delay(...)`` keeps working as before.

This module reads Celery tasks by duck typing (a ``name``, a ``run`` and an ``apply_async``) and
imports nothing from Celery, like the rest of the DSL.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Union

from durable_celery.dsl.goto import Goto
from durable_celery.errors import DefinitionError, TaskArgumentError

ArgsFn = Callable[[dict[str, Any]], Sequence[Any]]
KwargsFn = Callable[[dict[str, Any]], Mapping[str, Any]]
IntoFn = Callable[[dict[str, Any], Any], Union[dict[str, Any], Goto]]  # evaluated at runtime: no ``|`` on 3.9


def is_task(obj: Any) -> bool:
    """Whether ``obj`` looks like a Celery task (a registered ``@app.task`` or a shared task)."""
    try:
        return (isinstance(getattr(obj, "name", None), str) and callable(getattr(obj, "run", None))
                and callable(getattr(obj, "apply_async", None)))
    except Exception:  # noqa: BLE001 - a shared task's proxy with no current app: not usable as a task
        return False


def short_name(task: Any) -> str:
    """The default step name of a task: the last part of its dotted name (``proj.add_up`` -> ``add_up``)."""
    return str(task.name).rsplit(".", 1)[-1]


def parameters(task: Any) -> inspect.Signature | None:
    """The signature of the task's body (``self`` excluded for ``bind=True``), if it has one."""
    try:
        return inspect.signature(task.run)
    except (TypeError, ValueError):
        return None


def missing_parameter(sig: inspect.Signature | None, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str | None:
    """The first required parameter that ``args`` and ``kwargs`` leave unfilled, if any."""
    if sig is None:
        return None
    try:
        bound = sig.bind_partial(*args, **kwargs)
    except TypeError:
        return None  # too many or unknown arguments: the call raises its own TypeError
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.name not in bound.arguments and p.default is p.empty:
            return p.name
    return None


def call_task(task: Any, step: str, args: Sequence[Any], kwargs: Mapping[str, Any],
              sig: inspect.Signature | None, where: str) -> Any:
    """Run the task's body in this process with ``args`` and ``kwargs``.

    Raises:
        TaskArgumentError: a required parameter is left unfilled (``where`` says what was read).
    """
    missing = missing_parameter(sig, args, kwargs)
    if missing is not None:
        raise TaskArgumentError(step, task.name, missing, where)
    return task(*args, **kwargs)


class TaskStep:
    """The step function of ``wf.task_step``: maps the context to the task's arguments, runs
    the task's body, and maps its return value back into the context."""

    def __init__(self, workflow: str, step: str, task: Any, args: ArgsFn | None, kwargs: KwargsFn | None,
                 into: str | IntoFn | None) -> None:
        for what, fn in (("args", args), ("kwargs", kwargs)):
            if fn is not None and not callable(fn):
                raise DefinitionError(workflow, f"task_step({what}=...) must be a callable of the context, got {fn!r}",
                                      step)
        if into is not None and not callable(into) and (not isinstance(into, str) or not into):
            raise DefinitionError(workflow, f"task_step(into=...) must be a key or a callable (ctx, value), "
                                            f"got {into!r}", step)
        self.workflow = workflow
        self.step = step
        self.task = task
        self.args = args
        self.kwargs = kwargs
        self.into = into
        self.signature = parameters(task)
        self.__name__ = step

    def __call__(self, ctx: dict[str, Any]) -> Any:
        if self.args is None and self.kwargs is None:
            args, kwargs = self._by_name(ctx)
            where = f"the context (its keys: {', '.join(sorted(ctx)) or 'none'})"
        else:
            args = tuple(self.args(ctx)) if self.args is not None else ()
            kwargs = dict(self.kwargs(ctx)) if self.kwargs is not None else {}
            where = "args=/kwargs="
        value = call_task(self.task, self.step, args, kwargs, self.signature, where)
        if callable(self.into):
            return self.into(ctx, value)
        return {**ctx, (self.into or self.step): value}

    def _by_name(self, ctx: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Each named parameter of the task that the context has a key for, by name."""
        if self.signature is None:
            return (), {}
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        gap = False  # a positional-only parameter the context lacks: the later ones cannot be placed
        for p in self.signature.parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name not in ctx:
                gap = gap or p.kind is p.POSITIONAL_ONLY
                continue
            if p.kind is p.POSITIONAL_ONLY:
                if not gap:
                    args.append(ctx[p.name])
            else:
                kwargs[p.name] = ctx[p.name]
        return tuple(args), kwargs
