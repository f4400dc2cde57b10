"""index for the search by id prefix: ``id LIKE 'ab12%'`` among the top-level executions, a
range scan under any collation (text_pattern_ops compares bytes)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

TABLE = 'workflow_executions'
LISTED_WHERE = sa.text("kind = 'workflow'")


def upgrade() -> None:
    op.create_index('ix_workflow_executions_id_prefix', TABLE, ['id'], unique=False,
                    postgresql_ops={'id': 'text_pattern_ops'}, postgresql_where=LISTED_WHERE, sqlite_where=LISTED_WHERE)


def downgrade() -> None:
    op.drop_index('ix_workflow_executions_id_prefix', table_name=TABLE, postgresql_where=LISTED_WHERE,
                  sqlite_where=LISTED_WHERE)
