"""versions: the compiled definitions workers registered (``workflow_versions``) and the index
``durable plan`` groups in-flight executions on

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

TABLE = 'workflow_executions'
JSON = sa.JSON().with_variant(JSONB(), 'postgresql')
IN_FLIGHT_WHERE = sa.text("status IN ('pending', 'running', 'waiting', 'compensating')")


def upgrade() -> None:
    op.create_table('workflow_versions',
    sa.Column('workflow', sa.String(length=255), nullable=False),
    sa.Column('version', sa.String(length=32), nullable=False),
    sa.Column('label', JSON, nullable=True),
    sa.Column('states', JSON, nullable=False),
    sa.Column('entry', sa.String(length=255), nullable=False),
    sa.Column('first_seen', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('workflow', 'version', name=op.f('pk_workflow_versions')),
    )
    op.create_index('ix_workflow_executions_in_flight', TABLE, ['workflow', 'version', 'current_node', 'node_shape'],
                    unique=False, postgresql_include=['id'], postgresql_where=IN_FLIGHT_WHERE, sqlite_where=IN_FLIGHT_WHERE)


def downgrade() -> None:
    op.drop_index('ix_workflow_executions_in_flight', table_name=TABLE, postgresql_where=IN_FLIGHT_WHERE,
                  sqlite_where=IN_FLIGHT_WHERE)
    op.drop_table('workflow_versions')
