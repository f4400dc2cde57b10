"""indexes for big tables: the unfiltered first page of executions (and their count by status),
the callers waiting for a child; the sweeps' ready and lease indexes keyed off the claim's and
the checkpoint's way (their predicates name the lease expiry, not its owner)

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

TABLE = 'workflow_executions'
LISTED_WHERE = sa.text("kind = 'workflow'")
CHILD_WHERE = sa.text("kind = 'child' AND status = 'pending'")
#: ix_workflow_executions_ready and _lease, before and after
OLD = {'ready': sa.text('lease_owner IS NULL AND ready_at IS NOT NULL'), 'lease': sa.text('lease_owner IS NOT NULL')}
NEW = {'ready': sa.text('ready_at IS NOT NULL AND lease_expires_at IS NULL'),
       'lease': sa.text('lease_expires_at IS NOT NULL')}
COLUMN = {'ready': 'ready_at', 'lease': 'lease_expires_at'}


def _swap(before: dict[str, sa.TextClause], after: dict[str, sa.TextClause]) -> None:
    for name, column in COLUMN.items():
        op.drop_index(f'ix_workflow_executions_{name}', table_name=TABLE, postgresql_where=before[name],
                      sqlite_where=before[name])
        op.create_index(f'ix_workflow_executions_{name}', TABLE, [column], unique=False, postgresql_where=after[name],
                        sqlite_where=after[name])


def upgrade() -> None:
    _swap(OLD, NEW)
    op.create_index('ix_workflow_executions_listed', TABLE, ['created_at', 'status'], unique=False,
                    postgresql_where=LISTED_WHERE, sqlite_where=LISTED_WHERE)
    op.create_index('ix_waits_child', 'waits', ['ref'], unique=False, postgresql_where=CHILD_WHERE,
                    sqlite_where=CHILD_WHERE)


def downgrade() -> None:
    op.drop_index('ix_waits_child', table_name='waits', postgresql_where=CHILD_WHERE, sqlite_where=CHILD_WHERE)
    op.drop_index('ix_workflow_executions_listed', table_name=TABLE, postgresql_where=LISTED_WHERE,
                  sqlite_where=LISTED_WHERE)
    _swap(NEW, OLD)
