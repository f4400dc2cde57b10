"""``migrate-executions``: move in-flight executions onto the deployed definition of their
workflow (docs/migrating-executions.md). Named apart from ``migrate``, which migrates the
database schema. A dry run unless ``--apply``."""

from __future__ import annotations

import click

from durable_celery.cli.errors import InputError
from durable_celery.cli.instance import CliState, pass_state
from durable_celery.cli.output import emit_json, table


def _mapping(pairs: tuple[str, ...]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise InputError(f"--map takes OLD=NEW (an old node id, a state of the deployed definition), got {pair!r}")
        if old.strip() in mapping:
            raise InputError(f"--map names {old.strip()!r} twice")
        mapping[old.strip()] = new.strip()
    return mapping


@click.command("migrate-executions")
@click.argument("workflow")
@click.option("--map", "pairs", multiple=True, required=True, metavar="OLD=NEW",
              help="move executions standing on node OLD to state NEW of the deployed definition (repeatable)")
@click.option("--id", "ids", multiple=True, metavar="EXECUTION_ID",
              help="only this execution (repeatable; default: every execution on a mapped node)")
@click.option("--restart-step", is_flag=True,
              help="NEW starts afresh (another step): the old step's pending waits are cancelled; by default NEW "
                   "continues the step's visit (the same step renamed or changed), replaying its waits")
@click.option("--apply", "apply", is_flag=True, help="move them; without it, only show what would move")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
@pass_state
def migrate_executions(state: CliState, workflow: str, pairs: tuple[str, ...], ids: tuple[str, ...],
                       restart_step: bool, apply: bool, as_json: bool) -> None:
    """Move waiting (or DefinitionChanged-failed) executions of WORKFLOW onto its deployed
    definition, at the states --map names. A dry run unless --apply."""
    result = state.durable.migrate_executions(workflow, _mapping(pairs), ids=list(ids) or None, dry_run=not apply,
                                              restart_step=restart_step)
    if as_json:
        emit_json({**{k: getattr(result, k) for k in ("workflow", "version", "dry_run", "mapping", "moved",
                                                          "skipped", "unmatched")}, "count": result.count})
        return
    verb = "would move" if result.dry_run else "moved"
    click.echo(f"{verb} {result.count} execution(s) of {result.workflow} to version {result.version}")
    rows = [(old, result.mapping[old], execution_id) for old, moved in result.moved.items() for execution_id in moved]
    if rows:
        click.echo(table(["FROM", "TO", "EXECUTION"], rows))
    if result.skipped:
        click.echo(table(["SKIPPED", "ON", "STATUS", "REASON"],
                         [(s.execution_id, s.node, s.status, s.reason) for s in result.skipped]))
    if result.unmatched:
        click.echo(f"no execution considered stands on: {', '.join(result.unmatched)}")
    if result.dry_run and result.count:
        click.echo("dry run: nothing was written; add --apply to move them")
