"""Aggregates for operators, computed in SQL: per-workflow summaries (``list_workflows``) and
metrics (``get_metrics``): counts by status, execution durations and per-step figures.

Percentiles are the continuous kind (linear interpolation between the two nearest ranks), the
same figure on both databases: Postgres computes them with ``percentile_cont``; SQLite, which
has no such aggregate, ranks the durations with ``row_number()`` over each group and returns only
the two rows around each percentile's rank, which are interpolated here. Nothing but those rows
leaves the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Float, Integer, case, cast, extract, func, literal, literal_column, or_, select
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.sql.expression import ColumnElement, FromClause

from durable_celery.engine.statuses import MIGRATED_STEP, TERMINAL, ExecutionStatus, StepStatus
from durable_celery.state.tables import step_executions as s
from durable_celery.state.tables import workflow_executions as t

#: the percentiles every figure reports
PERCENTILES = (0.5, 0.95)
#: top-level executions, as a literal (see ``executions.py``: partial indexes need the value)
_WORKFLOW: ColumnElement[str] = literal_column("'workflow'")
_FINISHED = sorted(status.value for status in TERMINAL)


@dataclass(frozen=True)
class Figures:
    """How many durations a group has, and their mean and percentiles (ms; None if none)."""

    count: int
    avg: float | None
    percentiles: tuple[float | None, ...]


def workflow_summaries_txn(conn: Connection) -> list[RowMapping]:
    """One row per workflow name seen among top-level executions, in one statement: total
    runs, pending/running/waiting/completed/failed counts, the newest run's ``created_at`` and
    status (a correlated lookup on the newest row of each name)."""
    latest = t.alias("latest")
    last_status = (select(latest.c.status)
                   .where(latest.c.kind == _WORKFLOW, latest.c.workflow == t.c.workflow)
                   .order_by(latest.c.created_at.desc(), latest.c.id).limit(1).scalar_subquery())
    counted = [func.sum(case((t.c.status == status.value, 1), else_=0)).label(status.value)
               for status in (ExecutionStatus.PENDING, ExecutionStatus.RUNNING, ExecutionStatus.WAITING,
                              ExecutionStatus.COMPLETED, ExecutionStatus.FAILED)]
    stmt = (select(t.c.workflow, func.count().label("total_runs"), *counted,
                   func.max(t.c.created_at).label("last_run_at"), last_status.label("last_status"))
            .where(t.c.kind == _WORKFLOW).group_by(t.c.workflow).order_by(t.c.workflow))
    return list(conn.execute(stmt).mappings())


def status_counts_txn(conn: Connection, workflow: str | None, since: datetime | None) -> dict[str, int]:
    """Top-level executions by status, of one workflow or all, created at or after ``since``."""
    stmt = select(t.c.status, func.count()).where(*_executions_where(workflow, since)).group_by(t.c.status)
    return {status: count for status, count in conn.execute(stmt)}


def execution_durations_txn(conn: Connection, workflow: str | None, since: datetime | None) -> Figures:
    """``completed_at - started_at`` (ms) of the finished top-level executions that started."""
    duration = _elapsed_ms(conn, t.c.started_at, t.c.completed_at)
    where = [*_executions_where(workflow, since), t.c.status.in_(_FINISHED),
             t.c.started_at.is_not(None), t.c.completed_at.is_not(None)]
    found = _figures(conn, literal("all"), duration, t, where)
    return found.get("all", Figures(0, None, (None,) * len(PERCENTILES)))


def step_figures_txn(conn: Connection, workflow: str | None,
                     since: datetime | None) -> list[tuple[str, int, int, Figures]]:
    """Per step name: attempts, failed attempts and the durations (``duration_ms``) of the
    attempts that ended, of one workflow's executions (their branches and iterations included)
    or all, started at or after ``since``. By step name."""
    source: FromClause = s
    where: list[Any] = [s.c.step_name != MIGRATED_STEP]  # a migration's history row is no attempt
    if workflow is not None:
        source = s.join(t, t.c.id == s.c.execution_id)
        where.append(t.c.workflow == workflow)
    if since is not None:
        where.append(s.c.started_at >= since)
    counted = select(s.c.step_name, func.count().label("attempts"),
                     func.sum(case((s.c.status == StepStatus.FAILED.value, 1), else_=0)).label("failures"),
                     ).select_from(source).where(*where).group_by(s.c.step_name)
    counts = {row.step_name: (row.attempts, row.failures or 0) for row in conn.execute(counted)}
    figures = _figures(conn, s.c.step_name, s.c.duration_ms, source, where)
    empty = Figures(0, None, (None,) * len(PERCENTILES))
    return [(name, attempts, failures, figures.get(name, empty))
            for name, (attempts, failures) in sorted(counts.items())]


def _executions_where(workflow: str | None, since: datetime | None) -> list[Any]:
    where: list[Any] = [t.c.kind == _WORKFLOW]
    if workflow is not None:
        where.append(t.c.workflow == workflow)
    if since is not None:
        where.append(t.c.created_at >= since)  # a range on ix_workflow_executions_listed
    return where


def _elapsed_ms(conn: Connection, start: Any, end: Any) -> ColumnElement[Any]:
    if conn.dialect.name == "postgresql":
        return extract("epoch", end - start) * 1000
    # SQLite keeps times as text, 'YYYY-MM-DD HH:MM:SS.ffffff' (SQLAlchemy's format, always with
    # the microseconds): whole seconds from strftime, plus the fractions; exact, unlike julianday
    # (a double of days: about 50 µs)
    def seconds(at: Any) -> ColumnElement[Any]:
        return cast(func.strftime("%s", at), Integer)

    def fraction(at: Any) -> ColumnElement[Any]:
        return cast(func.substr(at, 20), Float)

    return (seconds(end) - seconds(start)) * 1000.0 + (fraction(end) - fraction(start)) * 1000.0


def _figures(conn: Connection, group: ColumnElement[Any], value: ColumnElement[Any],
             source: FromClause, where: list[Any]) -> dict[Any, Figures]:
    """Count, mean and :data:`PERCENTILES` of ``value`` per ``group`` over the rows of
    ``source`` that match ``where`` (rows where ``value`` is NULL are not counted)."""
    where = [*where, value.is_not(None)]
    if conn.dialect.name == "postgresql":
        stmt = select(
            group.label("grp"), func.count(value).label("n"), func.avg(value).label("mean"),
            *(func.percentile_cont(p).within_group(value).label(f"p{i}") for i, p in enumerate(PERCENTILES)),
        ).select_from(source).where(*where).group_by(group)
        return {row.grp: Figures(row.n, _float(row.mean), tuple(_float(row[f"p{i}"]) for i in range(len(PERCENTILES))))
                for row in conn.execute(stmt).mappings()}
    stmt = (select(group.label("grp"), func.count(value).label("n"), func.avg(value).label("mean"))
            .select_from(source).where(*where).group_by(group))
    means = {row.grp: (row.n, _float(row.mean)) for row in conn.execute(stmt)}
    ranked = _ranked(conn, group, value, source, where)
    return {grp: Figures(n, mean, tuple(_interpolate(ranked.get(grp, {}), n, p) for p in PERCENTILES))
            for grp, (n, mean) in means.items()}


def _ranked(conn: Connection, group: ColumnElement[Any], value: ColumnElement[Any], source: FromClause,
            where: list[Any]) -> dict[Any, dict[int, float]]:
    """The values at the ranks around each percentile (0-based ``floor(p * (n - 1))`` and the
    next), per group: a window query that returns a handful of rows per group."""
    inner = select(
        group.label("grp"), value.label("v"),
        (func.row_number().over(partition_by=group, order_by=value) - 1).label("rn"),
        func.count().over(partition_by=group).label("n"),
    ).select_from(source).where(*where).subquery()
    wanted = []
    for p in PERCENTILES:
        low = cast(literal(p) * (inner.c.n - 1), Integer)  # truncation: the floor of a positive number
        wanted += [inner.c.rn == low, inner.c.rn == low + 1]
    rows = conn.execute(select(inner.c.grp, inner.c.rn, inner.c.v).where(or_(*wanted)))
    ranked: dict[Any, dict[int, float]] = {}
    for grp, rn, v in rows:
        ranked.setdefault(grp, {})[rn] = float(v)
    return ranked


def _interpolate(values: dict[int, float], n: int, p: float) -> float | None:
    """``percentile_cont(p)`` from the values at ranks ``floor(p * (n - 1))`` and the next."""
    if n == 0:
        return None
    rank = p * (n - 1)
    low = int(rank)
    high = min(low + 1, n - 1)
    if low not in values or high not in values:
        return None
    return values[low] + (values[high] - values[low]) * (rank - low)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)

