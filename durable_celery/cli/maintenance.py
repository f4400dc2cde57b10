"""Commands that look after the deployment: migrate [--check], cleanup, doctor."""

from __future__ import annotations

from datetime import timedelta

import click

from durable_celery.cli.instance import CliState, pass_state
from durable_celery.cli.output import cell, details, emit_json
from durable_celery.cli.params import duration
from durable_celery.durable import Durable
from durable_celery.operations.retention import FINISHED, MAX_BATCH
from durable_celery.state import migrate as schema


@click.command()
@click.option("--check", is_flag=True, help="only compare the database with this version; exit 1 when it is behind")
@pass_state
def migrate(state: CliState, check: bool) -> None:
    """Bring the database schema up to this version's head revision."""
    durable = state.durable
    where = _where(durable)
    current, head = schema.current_revision(durable.db), schema.head_revision()
    if check:
        click.echo(f"{where}: current {current or 'none (not created)'}, head {head}")
        if current != head:
            raise click.ClickException(f"{where} is behind: run `{state.command('migrate')}`")
        click.echo("up to date")
        return
    if current == head:
        click.echo(f"{where} is already at {head}")
        return
    schema.upgrade(durable.db)
    click.echo(f"migrated {where} from {current or 'nothing'} to {head}")


def _where(durable: Durable) -> str:
    db = durable.db
    return f"schema {db.schema!r}" if db.schema else f"database {durable.settings.database_url}"


@click.command()
@click.option("--older-than", "older_than", required=True, callback=duration, metavar="AGE",
              help="delete executions that finished longer ago than this: 30d, 12h, 90m, 45s, 2w")
@click.option("--status", "statuses", multiple=True, type=click.Choice(FINISHED),
              help="only executions that ended in this status (repeatable; all final statuses by default)")
@click.option("--batch-size", type=click.IntRange(1, MAX_BATCH), default=1000, show_default=True,
              help="executions deleted per transaction")
@click.option("--dry-run", is_flag=True, help="count what would be deleted, delete nothing")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@pass_state
def cleanup(state: CliState, older_than: timedelta, statuses: tuple[str, ...], batch_size: int, dry_run: bool,
            as_json: bool) -> None:
    """Delete finished executions (with their attempts, waits and events) in small batches."""
    report = state.durable.cleanup(older_than, statuses=statuses or None, batch_size=batch_size, dry_run=dry_run)
    if as_json:
        emit_json(report)
        return
    verb = "would delete" if dry_run else "deleted"
    click.echo(f"{verb} {report.workflows} executions finished before {cell(report.cutoff)} "
               f"({', '.join(report.statuses)}) in {report.batches} batches, {report.seconds:.1f}s")
    click.echo(details([("executions", report.executions), ("step attempts", report.attempts),
                        ("waits", report.waits), ("events", report.events), ("broadcasts", report.broadcasts)]))


@click.command()
@click.option("--json", "as_json", is_flag=True, help="print the findings as JSON")
@click.option("--fix", is_flag=True, help="first run one tick here (recover expired leases, re-dispatch), as beat does")
@pass_state
def doctor(state: CliState, as_json: bool, fix: bool) -> None:
    """Why executions are not moving: beat, workers' queues, leases, waits, compensations,
    schedules, schema. Exits 1 when something is wrong."""
    report = state.durable.doctor(fix=fix)
    if as_json:
        emit_json({"healthy": report.healthy, "findings": report.findings, "fixed": report.fixed})
    else:
        if report.fixed is not None:
            done = ", ".join(f"{k} {v}" for k, v in report.fixed.items() if v) or "nothing to do"
            click.echo(f"fix: ran one tick: {done}")
        for finding in report.findings:
            mark = "ok" if finding.ok else "PROBLEM"
            click.echo(f"{mark:8} {finding.check:14} {finding.message}")
            if finding.examples and not finding.ok:
                click.echo(f"{'':8} {'':14} e.g. {', '.join(finding.examples)}")
    if not report.healthy:
        raise SystemExit(1)
