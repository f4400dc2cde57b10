"""indexes for big tables: the unfiltered first page of executions (and their count by status),
the callers waiting for a child

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

LISTED_WHERE = sa.text("kind = 'workflow'")
CHILD_WHERE = sa.text("kind = 'child' AND status = 'pending'")


def upgrade() -> None:
    op.create_index('ix_workflow_executions_listed', 'workflow_executions', ['created_at', 'status'], unique=False,
                    postgresql_where=LISTED_WHERE, sqlite_where=LISTED_WHERE)
    op.create_index('ix_waits_child', 'waits', ['ref'], unique=False, postgresql_where=CHILD_WHERE,
                    sqlite_where=CHILD_WHERE)


def downgrade() -> None:
    op.drop_index('ix_waits_child', table_name='waits', postgresql_where=CHILD_WHERE, sqlite_where=CHILD_WHERE)
    op.drop_index('ix_workflow_executions_listed', table_name='workflow_executions', postgresql_where=LISTED_WHERE,
                  sqlite_where=LISTED_WHERE)
