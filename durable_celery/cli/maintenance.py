"""Commands that look after the database: migrate [--check]."""

from __future__ import annotations

import click

from durable_celery.cli.instance import CliState, pass_state
from durable_celery.durable import Durable
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
