"""start deadlines: when an execution's first step must have begun by (else it is cancelled),
and the index of the tick's sweep of those not started in time

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

TABLE = 'workflow_executions'
START_DEADLINE_WHERE = sa.text("start_deadline_at IS NOT NULL")


def _schema() -> str | None:
    # ALTER TABLE statements do not go through the schema_translate_map; name the schema.
    return context.config.attributes.get("schema")


def upgrade() -> None:
    # nullable, no default: adding it rewrites no row
    with op.batch_alter_table(TABLE, schema=_schema()) as batch:
        batch.add_column(sa.Column('start_deadline_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index('ix_workflow_executions_start_deadline', TABLE, ['start_deadline_at'], unique=False,
                    postgresql_where=START_DEADLINE_WHERE, sqlite_where=START_DEADLINE_WHERE)


def downgrade() -> None:
    op.drop_index('ix_workflow_executions_start_deadline', table_name=TABLE, postgresql_where=START_DEADLINE_WHERE,
                  sqlite_where=START_DEADLINE_WHERE)
    with op.batch_alter_table(TABLE, schema=_schema()) as batch:
        batch.drop_column('start_deadline_at')
