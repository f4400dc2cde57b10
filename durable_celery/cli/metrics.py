"""Commands on what executions add up to: metrics."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import click

from durable_celery.cli.instance import CliState, pass_state
from durable_celery.cli.output import emit_json, format_option, table
from durable_celery.cli.params import duration


def json_flag(fn: click.decorators.FC) -> click.decorators.FC:
    return click.option("--json", "as_json", is_flag=True, help="the same as --format json")(fn)


@click.command()
@click.option("--workflow", metavar="NAME", help="only this workflow's executions")
@click.option("--since", metavar="DURATION", callback=duration,
              help="only executions created (and attempts started) this long ago or later: 90s, 30m, 1h, 2d, 1w")
@format_option
@json_flag
@pass_state
def metrics(state: CliState, workflow: str | None, since: timedelta | None, fmt: str, as_json: bool) -> None:
    """Counts by status, success rate and durations of executions, and per step the attempts,
    failures and durations (computed in the database)."""
    found = state.durable.get_metrics(workflow=workflow, since=since)
    if fmt == "json" or as_json:
        emit_json(dataclasses.asdict(found))
        return
    rate = "-" if found.success_rate is None else f"{found.success_rate:.1%}"
    summary = [("executions", found.total), ("finished", found.finished), ("success rate", rate),
               ("avg duration", _ms(found.avg_duration_ms)), ("p50 duration", _ms(found.p50_duration_ms)),
               ("p95 duration", _ms(found.p95_duration_ms))]
    parts = [table(["METRIC", "VALUE"], summary),
             table(["STATUS", "COUNT"], [(s, n) for s, n in found.counts.items() if n])]
    if found.steps:
        parts.append(table(["STEP", "ATTEMPTS", "FAILURES", "AVG", "P50", "P95"],
                           [(s.step_name, s.attempts, s.failures, _ms(s.avg_duration_ms), _ms(s.p50_duration_ms),
                             _ms(s.p95_duration_ms)) for s in found.steps]))
    click.echo("\n\n".join(parts))


def _ms(value: float | None) -> str | None:
    if value is None:
        return None
    return f"{value:.0f} ms" if value < 10_000 else f"{value / 1000:.1f} s"
