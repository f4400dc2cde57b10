"""Pydantic models as a step's context, item and result.

A step annotated ``def charge(ctx: Order) -> Order`` receives its context rebuilt as an
``Order`` (``Order.model_validate`` of the stored JSON) and may return a model: it is stored as
JSON (``model_dump(mode="json")``), so the engine's context stays a plain dict and the next step
rebuilds whatever its own annotation asks for. ``goto(step, model)`` and ``start(workflow,
model)`` take models too, and a workflow whose first step takes a model validates its input at
``start`` (``runtime/starts.py``).

Models are recognised by pydantic 2's API (``model_validate``, ``model_dump``, ``model_fields``),
without importing pydantic: a project that does not use it pays nothing, and a step with no
model annotation is registered unwrapped.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class ModelLike(Protocol):
    """A pydantic model instance (what ``start``, ``goto`` and a step may give for a context)."""

    def model_dump(self, *, mode: str = ...) -> dict[str, Any]: ...


def is_model_class(obj: Any) -> bool:
    """Is ``obj`` a pydantic (2) model class?"""
    return isinstance(obj, type) and all(hasattr(obj, a) for a in ("model_validate", "model_dump", "model_fields"))


def is_model(value: Any) -> bool:
    """Is ``value`` a pydantic (2) model instance?"""
    return not isinstance(value, type) and is_model_class(type(value))


def dump(value: Any) -> Any:
    """A model as its JSON form (a dict); anything else unchanged."""
    return value.model_dump(mode="json") if is_model(value) else value


class TypedStep:
    """A step function whose parameters name models: called with them rebuilt from their JSON
    form, its model result dumped back to it. Everything else passes through unchanged."""

    def __init__(self, fn: Callable[..., Any], models: tuple[type | None, ...]) -> None:
        self.fn = fn
        self.models = models
        functools.update_wrapper(self, fn)

    @property
    def ctx_model(self) -> type | None:
        """The model of the context (the first parameter), if it names one."""
        return self.models[0] if self.models else None

    def __call__(self, *args: Any) -> Any:
        rebuilt = [m.model_validate(a) if m is not None and not isinstance(a, m) else a  # type: ignore[attr-defined]
                   for a, m in zip(args, self.models)]
        return dump(self.fn(*rebuilt, *args[len(self.models):]))


def typed(fn: Callable[..., Any], arity: int) -> Callable[..., Any]:
    """``fn`` wrapped as a :class:`TypedStep` if one of its first ``arity`` parameters (or its
    result) is annotated with a model, else ``fn`` itself."""
    hints = _hints(fn)
    if hints is None:
        return fn
    params = list(inspect.signature(fn).parameters)[:arity]
    models = tuple(hints.get(p) if is_model_class(hints.get(p)) else None for p in params)
    if not any(models) and not is_model_class(hints.get("return")):
        return fn
    return TypedStep(fn, models)


def ctx_model(fn: Any) -> type | None:
    """The model a registered step function takes as its context, if any."""
    return fn.ctx_model if isinstance(fn, TypedStep) else None


def _hints(fn: Callable[..., Any]) -> dict[str, Any] | None:
    """``fn``'s resolved annotations; None for a callable that is not a plain function (a task
    object). When they do not all resolve (``X | Y`` written as a string on Python 3.9, a name
    the module cannot see), each is resolved on its own and those that fail are left out."""
    if not (inspect.isfunction(fn) or inspect.ismethod(fn)):
        return None
    try:
        return typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - one unresolvable annotation: resolve the others one by one
        pass
    hints = {}
    for name, annotation in getattr(fn, "__annotations__", {}).items():
        try:
            hints[name] = (eval(annotation, getattr(fn, "__globals__", {})) if isinstance(annotation, str)  # noqa: S307
                           else annotation)
        except Exception:  # noqa: BLE001 - not a name this module can see: not a model then
            continue
    return hints
