"""operations: the last beat tick (doctor), and the index cleanup walks (finished top-level
executions by completion time)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

TABLE = 'workflow_executions'
FINISHED_WHERE = sa.text("kind = 'workflow' AND completed_at IS NOT NULL")


def upgrade() -> None:
    op.create_table('heartbeats',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('detail', sa.String(length=255), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_heartbeats')),
    )
    op.create_index('ix_workflow_executions_finished', TABLE, ['completed_at', 'id'], unique=False,
                    postgresql_where=FINISHED_WHERE, sqlite_where=FINISHED_WHERE)


def downgrade() -> None:
    op.drop_index('ix_workflow_executions_finished', table_name=TABLE, postgresql_where=FINISHED_WHERE,
                  sqlite_where=FINISHED_WHERE)
    op.drop_table('heartbeats')
