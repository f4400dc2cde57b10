"""The client's reads over many executions, a part of ``Durable`` (it inherits them):
``list_executions``, ``page_executions``, ``count_by_status``, ``list_workflows`` and
``get_metrics``. Every filter is checked before the database is touched: a bad one raises
``InvalidInput`` and nothing else happens. See docs/client-api.md.

Paging is by keyset: a cursor names the (created_at, id) of the last execution of a page, and
the next page is the executions after it in the listing order (newest first). It reads from an
index at any depth, unlike an offset, and executions started meanwhile (newer than the first
page) neither shift nor repeat the pages that follow.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from durable_celery.clock import as_utc
from durable_celery.dsl.workflow import Workflow
from durable_celery.durations import to_seconds
from durable_celery.engine.statuses import TERMINAL, ExecutionStatus
from durable_celery.errors import InvalidInput
from durable_celery.limits import check_count, check_name
from durable_celery.models import Execution, ExecutionPage, Metrics, StepMetrics, WorkflowSummary
from durable_celery.state.executions import ID_PREFIX, count_by_status_txn, list_txn
from durable_celery.state.metrics import (
    execution_durations_txn,
    status_counts_txn,
    step_figures_txn,
    workflow_summaries_txn,
)
from durable_celery.state.records import to_execution

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from sqlalchemy.engine import Connection

    from durable_celery.clock import Clock
    from durable_celery.registry import Registry
    from durable_celery.state.db import Database

#: the most executions one page may hold
MAX_PAGE = 1000
_CURSOR_VERSION = "1"


class QueryCalls:
    """The listing and metrics half of the client API (mixed into ``Durable``)."""

    if TYPE_CHECKING:
        db: Database
        clock: Clock
        registry: Registry

        def ensure_schema(self) -> None: ...

        def _version_labels(self, conn: Connection, rows: Iterable[Mapping[Any, Any]]) -> dict[tuple[str, str], Any]:
            ...

    def list_executions(self, workflow: Workflow | str | None = None, status: str | None = None,
                        queue: str | None = None, limit: int = 50, offset: int = 0, *,
                        current_step: str | None = None, created_after: datetime | None = None,
                        created_before: datetime | None = None, cursor: str | None = None,
                        id_prefix: str | None = None) -> list[Execution]:
        """Top-level executions, newest first, filtered by workflow, status, queue, current step
        and creation time.

        Args:
            workflow: a ``Workflow`` or its name. status: an ``ExecutionStatus`` or its value.
            queue: the execution's queue. current_step: the step (or block) it stands on.
            created_after, created_before: timezone-aware datetimes; ``created_at`` at or after
                the first and before the second.
            limit, offset: at most ``limit`` executions, skipping ``offset`` first.
            cursor: a ``next_cursor`` of :meth:`page_executions`: start after that page.
            id_prefix: only executions whose id starts with these characters (hex digits and
                dashes, as ids are written: ``"3f2a"``).

        Raises:
            InvalidInput: an unknown status, a naive datetime, a bad limit, offset, cursor or
                id prefix.
        """
        check_count(limit, "limit")
        return self._list(workflow, status, queue, current_step, created_after, created_before, cursor,
                          limit, offset, id_prefix)

    def page_executions(self, workflow: Workflow | str | None = None, status: str | None = None,
                        queue: str | None = None, *, current_step: str | None = None,
                        created_after: datetime | None = None, created_before: datetime | None = None,
                        limit: int = 50, cursor: str | None = None, id_prefix: str | None = None) -> ExecutionPage:
        """One page of ``list_executions``, with the cursor of the next. Pages never overlap or
        skip an execution, and each reads from an index, however deep it is.

        Args:
            workflow, status, queue, current_step, created_after, created_before, id_prefix: as
                for ``list_executions``; pass the same ones with every page.
            limit: executions per page, 1 to 1000.
            cursor: ``None`` for the first page, then the ``next_cursor`` of the page before.

        Returns:
            ``ExecutionPage(items, next_cursor)``; ``next_cursor`` is None on the last page.

        Raises:
            InvalidInput: as ``list_executions``, or a limit out of range.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be an int from 1 to {MAX_PAGE}, got {limit!r}")
        # one more than the page: whether there is a next page, without a count
        found = self._list(workflow, status, queue, current_step, created_after, created_before, cursor,
                           limit + 1, 0, id_prefix)
        items = found[:limit]
        more = len(found) > limit
        return ExecutionPage(items, encode_cursor(items[-1].created_at, items[-1].id) if more else None)

    def _list(self, workflow: Workflow | str | None, status: Any, queue: Any, current_step: Any,
              created_after: Any, created_before: Any, cursor: Any, limit: int, offset: int,
              id_prefix: Any = None) -> list[Execution]:
        name = _workflow_name(workflow)
        if id_prefix is not None and (not isinstance(id_prefix, str) or not ID_PREFIX.fullmatch(id_prefix)):
            raise InvalidInput(f"id_prefix must be 1 to 36 lower-case hex digits and dashes, got {id_prefix!r}")
        status = status_value(status)
        check_count(offset, "offset")
        for what, value in (("queue", queue), ("current_step", current_step)):
            if value is not None:
                check_name(value, what)
        after, before = _aware(created_after, "created_after"), _aware(created_before, "created_before")
        position = decode_cursor(cursor) if cursor is not None else None
        self.ensure_schema()
        with self.db.connect() as conn:
            rows = list_txn(conn, workflow=name, status=status, queue=queue, current_step=current_step,
                            created_after=after, created_before=before, after=position, limit=limit, offset=offset,
                            id_prefix=id_prefix)
            labels = self._version_labels(conn, rows)
        return [to_execution(row, None, False, labels=labels) for row in rows]

    def count_by_status(self, statuses: Iterable[str] | None = None) -> dict[str, int]:
        """How many top-level executions are in each status (every status listed, zeros
        included), or only in ``statuses``: counting the few active ones reads only their
        entries of the status index, not the whole table.

        Raises:
            InvalidInput: an unknown status.
        """
        if isinstance(statuses, (str, bytes)):
            raise InvalidInput(f"statuses is a list of statuses, got {statuses!r}")
        wanted = list(ExecutionStatus) if statuses is None else [ExecutionStatus(_status(s)) for s in statuses]
        self.ensure_schema()
        with self.db.connect() as conn:
            stored = count_by_status_txn(conn, None if statuses is None else [s.value for s in wanted])
        return {status.value: stored.get(status.value, 0) for status in wanted}

    def list_workflows(self) -> list[WorkflowSummary]:
        """Every workflow registered here or seen among the executions, by name: its runs
        (total, pending, running, waiting, completed, failed) and its newest run's time and
        status. One grouped query over the top-level executions."""
        self.ensure_schema()
        with self.db.connect() as conn:
            rows = {row["workflow"]: row for row in workflow_summaries_txn(conn)}
        registered = set(self.registry.names())
        summaries = []
        for name in sorted(registered | set(rows)):
            row = rows.get(name)
            if row is None:
                summaries.append(WorkflowSummary(name, True, 0, 0, 0, 0, 0, 0, None, None))
                continue
            summaries.append(WorkflowSummary(
                name, name in registered, row["total_runs"], int(row["pending"]), int(row["running"]),
                int(row["waiting"]), int(row["completed"]), int(row["failed"]), as_utc(row["last_run_at"]),
                ExecutionStatus(row["last_status"]) if row["last_status"] is not None else None))
        return summaries

    def get_metrics(self, workflow: Workflow | str | None = None,
                    since: datetime | timedelta | float | None = None) -> Metrics:
        """Counts by status, success rate and durations of executions, and per step name the
        attempts, failures and durations, computed in SQL.

        Args:
            workflow: one workflow (a ``Workflow`` or its name), or all.
            since: a timezone-aware datetime, or a duration (``timedelta`` or seconds) meaning
                that long before now: only executions created, and attempts started, since then.

        Returns:
            ``Metrics``; see its docstring for what each figure covers.

        Raises:
            InvalidInput: a naive datetime, a negative or unusable ``since``, a bad workflow.
        """
        name = _workflow_name(workflow)
        if since is None or isinstance(since, datetime):
            start = _aware(since, "since")
        else:
            start = self.clock.now() - timedelta(seconds=to_seconds(since, "since"))
        self.ensure_schema()
        with self.db.connect() as conn:
            stored = status_counts_txn(conn, name, start)
            durations = execution_durations_txn(conn, name, start)
            steps = step_figures_txn(conn, name, start)
        counts = {status.value: stored.get(status.value, 0) for status in ExecutionStatus}
        finished = sum(counts[status.value] for status in TERMINAL)
        p50, p95 = durations.percentiles
        return Metrics(
            workflow=name, since=start, counts=counts, total=sum(counts.values()), finished=finished,
            success_rate=counts[ExecutionStatus.COMPLETED.value] / finished if finished else None,
            avg_duration_ms=durations.avg, p50_duration_ms=p50, p95_duration_ms=p95,
            steps=[StepMetrics(step, attempts, failures, figures.avg, *figures.percentiles)
                   for step, attempts, failures, figures in steps],
        )


def status_value(status: Any) -> str | None:
    """A status filter as stored (None: any); ``InvalidInput`` for an unknown one."""
    if status is None:
        return None
    try:
        return ExecutionStatus(status).value
    except ValueError:
        raise InvalidInput(f"unknown status {status!r}; one of {[s.value for s in ExecutionStatus]}") from None


def _status(status: Any) -> str:
    """A status as stored; ``InvalidInput`` for None or an unknown one."""
    value = status_value(status)
    if value is None:
        raise InvalidInput("a status, not None")
    return value


def encode_cursor(created_at: datetime, execution_id: str) -> str:
    """The opaque cursor after an execution: its (created_at, id), URL-safe."""
    text = f"{_CURSOR_VERSION}|{as_utc(created_at).isoformat()}|{execution_id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: Any) -> tuple[datetime, str]:
    """The (created_at, id) a cursor names; ``InvalidInput`` for anything else."""
    if not isinstance(cursor, str) or not cursor:
        raise InvalidInput(f"cursor must be a next_cursor string from page_executions, got {cursor!r}")
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        version, at, execution_id = text.split("|")
        created_at = datetime.fromisoformat(at)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidInput(f"{cursor!r} is not a cursor from page_executions") from None
    if version != _CURSOR_VERSION or created_at.tzinfo is None or not execution_id:
        raise InvalidInput(f"{cursor!r} is not a cursor from page_executions")
    return as_utc(created_at), execution_id


def _workflow_name(workflow: Any) -> str | None:
    if workflow is None or isinstance(workflow, Workflow):
        return workflow.name if workflow is not None else None
    if not isinstance(workflow, str):
        raise InvalidInput(f"workflow must be a Workflow or its name, got {workflow!r}")
    return check_name(workflow, "workflow name")


def _aware(value: Any, what: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidInput(f"{what} must be a timezone-aware datetime, got {value!r}")
    return as_utc(value)
