"""room on each page of workflow_executions for a checkpoint's new row version (fillfactor 75):
a checkpoint that changes no indexed column (continuation mode, a retry) can then stay on its
page (a HOT update), with no entry added to any of the table's indexes

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

TABLE = 'workflow_executions'


def _fillfactor(percent: int) -> None:
    if op.get_bind().dialect.name == 'postgresql':  # SQLite has no such storage parameter
        schema = op.get_context().version_table_schema
        table = f'"{schema}".{TABLE}' if schema else TABLE
        op.execute(f'ALTER TABLE {table} SET (fillfactor = {percent})')


def upgrade() -> None:
    _fillfactor(75)


def downgrade() -> None:
    _fillfactor(100)
