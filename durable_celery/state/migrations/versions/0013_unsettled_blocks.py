"""fan-out: the index of branches and iterations whose block is not settled yet, for the tick's
sweep of those whose worker died between their two transactions

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

TABLE = 'workflow_executions'
UNSETTLED_WHERE = sa.text("status = 'completed' AND ready_at IS NOT NULL")


def upgrade() -> None:
    op.create_index('ix_workflow_executions_unsettled', TABLE, ['ready_at'], unique=False,
                    postgresql_where=UNSETTLED_WHERE, sqlite_where=UNSETTLED_WHERE)


def downgrade() -> None:
    op.drop_index('ix_workflow_executions_unsettled', table_name=TABLE, postgresql_where=UNSETTLED_WHERE,
                  sqlite_where=UNSETTLED_WHERE)
