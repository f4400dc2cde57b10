"""``Workflow``: the builder users define workflows with."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar, overload

from durable_celery.dsl.blocks import Body, BodyStack, BranchBlock
from durable_celery.dsl.canvas import build_from_canvas
from durable_celery.dsl.nodes import CompensationNode, ForEachNode, LoopNode, Node, ParallelNode, StepKind, StepNode
from durable_celery.dsl.options import NO_RETRY, Cron, Retry, timeout_seconds
from durable_celery.dsl.tasks import ArgsFn, IntoFn, KwargsFn, TaskStep, is_task, short_name
from durable_celery.dsl.typed import typed
from durable_celery.durations import Duration
from durable_celery.errors import DefinitionError, DurableError

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


class Workflow:
    """A named workflow definition.

    Args:
        name: the stable identity of the workflow (stored on every execution).
        timeout: maximum duration of an execution; past it the execution fails with
            ``WorkflowTimeout``.
        queue: default Celery queue of its steps (else the engine's queue).
        schedule: a ``Cron`` that starts it on a schedule.
        start_deadline: an execution whose first step has not begun this long after it was due
            (started, or its ``scheduled_at``) is cancelled instead; ``durable.start``'s own
            ``start_deadline`` overrides it.
        version: a label (an int or a string) for this definition of the workflow. Several
            definitions of one name may be registered when their labels differ: new executions
            start on the highest label, and an execution started on another one keeps running
            on it while it stays registered (docs/deploys.md).
    """

    def __init__(
        self,
        name: str,
        *,
        timeout: Duration | None = None,
        queue: str | None = None,
        schedule: Cron | None = None,
        start_deadline: Duration | None = None,
        version: int | str | None = None,
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise DefinitionError(str(name), "a workflow needs a non-empty string name")
        self.name = name
        if version is not None and (isinstance(version, bool) or not isinstance(version, (int, str))
                                    or (isinstance(version, str) and not version.strip())):
            raise DefinitionError(name, f"version must be an int or a non-empty string, got {version!r}")
        self.version = version
        try:
            self.timeout = timeout_seconds(timeout, "timeout")
            self.start_deadline = timeout_seconds(start_deadline, "start_deadline")
        except DurableError as exc:
            raise DefinitionError(name, str(exc)) from None
        if queue is not None and (not isinstance(queue, str) or not queue):
            raise DefinitionError(name, f"queue must be a non-empty string, got {queue!r}")
        self.queue = queue
        self.schedule = schedule
        self._root = Body(self)
        #: the bodies being defined, innermost last (blocks open and close them)
        self.bodies = BodyStack(name, self._root)
        self._names: set[str] = set()
        self.compensations: dict[str, CompensationNode] = {}

    def __repr__(self) -> str:
        return f"Workflow({self.name!r})" if self.version is None else f"Workflow({self.name!r}, version={self.version!r})"

    @classmethod
    def from_canvas(cls, name: str, canvas: Any, *, compensations: Mapping[str, Any] | None = None,
                    step_options: Mapping[str, Mapping[str, Any]] | None = None, **options: Any) -> Workflow:
        """A workflow that runs a Celery canvas (a chain, group or chord of task signatures)
        with Celery's semantics, durably: each task is a step, each group a ``parallel`` block.

        Start it with ``{"args": [...], "kwargs": {...}}`` (what ``canvas.apply_async(args,
        kwargs)`` would get); its final context is ``{"result": <the canvas's result>}``. Steps
        are named after their tasks (``add_up``, ``add_up_2``, ...). See docs/legacy-tasks.md.

        Args:
            name: the workflow's name. canvas: the chain, group, chord or signature.
            compensations: ``{step: task_or_function}``, called with that step's result when the
                workflow fails after the step completed.
            step_options: ``{step: {"retry": Retry(...), "timeout": ..., "queue": ...}}``.
            options: the workflow's own options (``timeout``, ``queue``, ``schedule``,
                ``start_deadline``).

        Raises:
            DefinitionError: what the canvas uses is not supported (chunks, map, starmap,
                callbacks, countdown/eta, ...), naming the offending part.
        """
        workflow = cls(name, **options)
        build_from_canvas(workflow, canvas, compensations or {}, step_options or {})
        return workflow

    # -- steps ---------------------------------------------------------------------------------

    @overload
    def step(self, fn: F) -> F: ...

    @overload
    def step(
        self,
        *,
        retry: Retry | None = None,
        timeout: Duration | None = None,
        compensate: str | None = None,
        queue: str | None = None,
        returns: str | None = None,
        name: str | None = None,
    ) -> Callable[[F], F]: ...

    def step(self, fn: Any = None, **options: Any) -> Any:
        """Define a step: ``fn(ctx) -> dict`` (or a ``goto``). Usable bare or with options:
        ``retry``, ``timeout``, ``compensate`` (a compensation's name), ``queue``, ``returns``."""
        return self._register("step", fn, options)

    def task_step(self, task: T, *, args: ArgsFn | None = None, kwargs: KwargsFn | None = None,
                  into: str | IntoFn | None = None, name: str | None = None, **options: Any) -> T:
        """Define a step whose body is an existing Celery task, run in-process (no message).

        Args:
            task: an ``@app.task`` or ``@shared_task``; it is not changed (``.delay`` still works).
            args, kwargs: ``fn(ctx)`` returning the task's positional / keyword arguments. Without
                both, each parameter of the task is filled by name from the context (a parameter
                the context lacks takes its default).
            into: where the task's return value goes: a key (``{**ctx, key: value}``, default the
                step's name), or ``fn(ctx, value)`` returning the next context (or a ``goto``).
            name: the step's name; default the last part of the task's name.
            options: ``retry``, ``timeout``, ``compensate``, ``queue``, ``returns``, as for ``step``.

        Returns:
            The task, unchanged.

        Raises:
            DefinitionError: not a Celery task, a bad option, or inside a foreach body. A required
                parameter left unfilled fails the step at run time with ``TaskArgumentError``.
        """
        if not is_task(task):
            raise DefinitionError(self.name, f"task_step needs a Celery task (@app.task or @shared_task), got {task!r}",
                                  name)
        step_name = name or short_name(task)
        if self.bodies.takes_item:
            raise DefinitionError(self.name, "task_step cannot be used inside a foreach body: call the task from "
                                             "a step that takes (ctx, item)", step_name)
        self._register("step", TaskStep(self.name, step_name, task, args, kwargs, into), {**options, "name": step_name})
        return task

    @overload
    def decision(self, fn: F) -> F: ...

    @overload
    def decision(
        self,
        *,
        retry: Retry | None = None,
        timeout: Duration | None = None,
        compensate: str | None = None,
        queue: str | None = None,
        returns: str | None = None,
        name: str | None = None,
    ) -> Callable[[F], F]: ...

    def decision(self, fn: Any = None, **options: Any) -> Any:
        """Define a decision: a step meant to ``return goto(...)`` or the context unchanged."""
        return self._register("decision", fn, options)

    @overload
    def compensation(self, fn: F) -> F: ...

    @overload
    def compensation(self, *, retry: Retry | None = None, timeout: Duration | None = None,
                     name: str | None = None) -> Callable[[F], F]: ...

    def compensation(self, fn: Any = None, *, retry: Retry | None = None, timeout: Duration | None = None,
                     name: str | None = None) -> Any:
        """Define a compensation handler, referenced by ``step(compensate="name")``."""

        def register(f: F) -> F:
            cname = name or getattr(f, "__name__", None)
            if not callable(f) or not cname:
                raise DefinitionError(self.name, f"compensation must be a named callable, got {f!r}")
            _check_arity(self.name, cname, f, 1)
            if cname in self.compensations:
                raise DefinitionError(self.name, "duplicate compensation name", cname)
            self.compensations[cname] = CompensationNode(
                cname, typed(f, 1), _retry(self.name, cname, retry), _timeout(self.name, cname, timeout)
            )
            return f

        return register(fn) if fn is not None else register

    def _register(self, kind: StepKind, fn: Any, options: dict[str, Any]) -> Any:
        allowed = {"retry", "timeout", "compensate", "queue", "returns", "name"}
        unknown = set(options) - allowed
        if unknown:
            raise DefinitionError(self.name, f"unknown step option(s): {', '.join(sorted(unknown))}")

        def register(f: F) -> F:
            step_name = options.get("name") or getattr(f, "__name__", None)
            if not callable(f):
                raise DefinitionError(self.name, f"a {kind} must be callable, got {f!r}", step_name)
            if not isinstance(step_name, str) or not step_name or step_name == "<lambda>":
                raise DefinitionError(self.name, f"a {kind} needs a name (pass name=...)")
            if step_name in self._names:
                raise DefinitionError(self.name, "duplicate step name", step_name)
            takes_item = self.bodies.takes_item
            try:
                _check_arity(self.name, step_name, f, 2 if takes_item else 1)
            except DefinitionError as exc:
                if not is_task(f):
                    raise
                raise DefinitionError(self.name, f"{exc.message}; it is a Celery task: wf.task_step(task) runs it "
                                                 "as a step, its arguments filled from the context", step_name) from None
            queue = options.get("queue")
            if queue is not None and (not isinstance(queue, str) or not queue):
                raise DefinitionError(self.name, f"queue must be a non-empty string, got {queue!r}", step_name)
            compensate = options.get("compensate")
            if compensate is not None and (not isinstance(compensate, str) or not compensate):
                raise DefinitionError(self.name, f"compensate must be a compensation name, got {compensate!r}",
                                      step_name)
            returns = options.get("returns")
            if returns is not None and (not isinstance(returns, str) or not returns):
                raise DefinitionError(self.name, f"returns must be a non-empty string, got {returns!r}", step_name)
            node = StepNode(
                name=step_name,
                fn=typed(f, 2 if takes_item else 1),  # pydantic models in and out (dsl/typed.py)
                kind=kind,
                retry=_retry(self.name, step_name, options.get("retry")),
                timeout=_timeout(self.name, step_name, options.get("timeout")),
                compensate=compensate,
                queue=queue,
                returns=returns,
                takes_item=takes_item,
            )
            self._names.add(step_name)
            self.bodies.current.nodes.append(node)
            return f

        return register(fn) if fn is not None else register

    # -- blocks --------------------------------------------------------------------------------

    @contextmanager
    def branch(self, on: Callable[[dict[str, Any]], Any], *, name: str | None = None) -> Iterator[BranchBlock]:
        """Run exactly one clause, chosen by ``on(ctx)``; execution continues after the block."""
        if not callable(on):
            raise DefinitionError(self.name, f"branch(on=...) must be callable, got {on!r}", name)
        _check_arity(self.name, name or "branch", on, 1)
        block = BranchBlock(self.name, self.bodies, name, on)
        with self.bodies.opened(block.body):
            yield block
        self._add_block(block.build())

    @contextmanager
    def parallel(self, *, on_error: str = "fail_fast", into: Callable[..., Any] | None = None,
                 name: str | None = None) -> Iterator[None]:
        """Run each step (or block) defined inside concurrently, each on a copy of the context.

        The next step gets ``{**ctx, "__results__": {key: ["ok", value] | ["error", reason]}}``
        (key: the step's ``returns`` or name); with ``into=fn(ctx, results)`` its return (a dict,
        a ``goto``, or raising) decides instead. ``on_error="fail_fast"`` fails on the first
        error and cancels what has not finished; ``"complete_all"`` waits for every branch.
        """
        if on_error not in ("fail_fast", "complete_all"):
            raise DefinitionError(self.name, f"on_error must be 'fail_fast' or 'complete_all', got {on_error!r}", name)
        if into is not None:
            self._check_callable("into", into, 2, name or "parallel")
        with self._collect("a parallel block", name, self.bodies.takes_item) as body:
            yield
        keys = [getattr(n, "returns", None) or n.name for n in body.nodes]
        if len(set(keys)) != len(keys):
            raise DefinitionError(self.name, f"two branches of a parallel block have the same result key: {keys}", name)
        self._add_block(ParallelNode(name or f"parallel:{body.nodes[0].name}", tuple(body.nodes), on_error, into))

    @contextmanager
    def foreach(self, name: str, *, items: Callable[[dict[str, Any]], Any], concurrency: int = 1) -> Iterator[None]:
        """Run the steps defined inside once per item of ``items(ctx)``; they take ``(ctx, item)``.

        ``concurrency=1``: in order, each iteration getting the previous one's output context.
        ``concurrency>1``: up to that many at once on isolated copies of the context; the next
        step gets ``{**ctx, "__results__": [["ok", value] | ["error", reason], ...]}`` in item order.
        Each iteration is checkpointed: after a crash only unfinished ones run.
        """
        self._check_callable("foreach(items=...)", items, 1, name)
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise DefinitionError(self.name, f"concurrency must be an int >= 1, got {concurrency!r}", name)
        with self._collect("a foreach block", name, takes_item=True) as body:
            yield
        self._add_block(ForEachNode(name, items, concurrency, tuple(body.nodes)))

    @contextmanager
    def loop(self, name: str, *, condition: Callable[[dict[str, Any]], Any],
             max_iterations: int = 1000) -> Iterator[None]:
        """Repeat the steps defined inside while ``condition(ctx)`` is true (checked before each
        iteration); more than ``max_iterations`` iterations fail the execution."""
        self._check_callable("loop(condition=...)", condition, 1, name)
        if isinstance(max_iterations, bool) or not isinstance(max_iterations, int) or max_iterations < 1:
            raise DefinitionError(self.name, f"max_iterations must be an int >= 1, got {max_iterations!r}", name)
        with self._collect("a loop", name, self.bodies.takes_item) as body:
            yield
        self._add_block(LoopNode(name, condition, max_iterations, tuple(body.nodes)))

    @contextmanager
    def _collect(self, what: str, name: str | None, takes_item: bool) -> Iterator[Body]:
        """Collect the steps defined inside a block; it must define at least one."""
        body = Body(self, takes_item)
        with self.bodies.opened(body):
            yield body
        if not body.nodes:
            raise DefinitionError(self.name, f"{what} needs at least one step", name)

    def _check_callable(self, what: str, fn: Any, arity: int, name: str | None) -> None:
        if not callable(fn):
            raise DefinitionError(self.name, f"{what} must be callable, got {fn!r}", name)
        _check_arity(self.name, name or what, fn, arity)

    def _add_block(self, node: Node) -> None:
        if not isinstance(node.name, str) or not node.name:
            raise DefinitionError(self.name, f"a block needs a non-empty string name, got {node.name!r}")
        if node.name in self._names:
            raise DefinitionError(self.name, "duplicate step or block name", node.name)
        self._names.add(node.name)
        self.bodies.current.nodes.append(node)
        self._compiled = None

    # -- the definition ------------------------------------------------------------------------

    @property
    def body(self) -> tuple[Node, ...]:
        """The top-level nodes defined so far."""
        return tuple(self._root.nodes)

    @property
    def open_blocks(self) -> bool:
        """A block is still being defined (its ``with`` has not closed)."""
        return self.bodies.depth > 1


def _retry(workflow: str, step: str, retry: Any) -> Retry:
    if retry is None:
        return NO_RETRY
    if not isinstance(retry, Retry):
        raise DefinitionError(workflow, f"retry must be a Retry(...), got {retry!r}", step)
    return retry


def _timeout(workflow: str, step: str, timeout: Any) -> float | None:
    try:
        return timeout_seconds(timeout, "timeout")
    except DurableError as exc:
        raise DefinitionError(workflow, str(exc), step) from None


def _check_arity(workflow: str, step: str, fn: Callable[..., Any], n: int) -> None:
    """The function must accept exactly ``n`` positional arguments."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # builtins without a signature: checked when called
    try:
        sig.bind(*([None] * n))
    except TypeError:
        raise DefinitionError(
            workflow, f"{getattr(fn, '__name__', fn)!r} must take {n} positional argument(s), its signature is {sig}",
            step,
        ) from None
