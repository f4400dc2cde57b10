"""cron schedules (scheduled_workflows)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.create_table('scheduled_workflows',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('workflow', sa.String(length=255), nullable=False),
    sa.Column('cron', sa.String(length=255), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('input', JSON, nullable=True),
    sa.Column('queue', sa.String(length=255), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('origin', sa.String(length=16), server_default='client', nullable=False),
    sa.Column('next_run_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_run_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_execution_id', sa.String(length=36), nullable=True),
    sa.Column('consecutive_failures', sa.Integer(), server_default='0', nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('last_error_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('auto_disabled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("origin IN ('code', 'client')", name=op.f('ck_scheduled_workflows_origin')),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_scheduled_workflows')),
    )
    op.create_index('ix_scheduled_workflows_due', 'scheduled_workflows', ['next_run_at'], unique=False,
                    postgresql_where=sa.text('enabled'), sqlite_where=sa.text('enabled'))
    op.create_index(op.f('ix_scheduled_workflows_workflow'), 'scheduled_workflows', ['workflow'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_scheduled_workflows_workflow'), table_name='scheduled_workflows')
    op.drop_index('ix_scheduled_workflows_due', table_name='scheduled_workflows')
    op.drop_table('scheduled_workflows')
