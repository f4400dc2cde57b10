"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('workflow_executions',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('workflow', sa.String(length=255), nullable=False),
    sa.Column('version', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('queue', sa.String(length=255), nullable=False),
    sa.Column('priority', sa.Integer(), server_default='0', nullable=False),
    sa.Column('input', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('context', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('current_node', sa.String(length=255), nullable=True),
    sa.Column('node_shape', sa.String(length=32), nullable=True),
    sa.Column('attempt', sa.Integer(), server_default='1', nullable=False),
    sa.Column('seq', sa.Integer(), server_default='0', nullable=False),
    sa.Column('lease_owner', sa.String(length=64), nullable=True),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('step_started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ready_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('dispatched_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('deadline_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('error', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('parent_id', sa.String(length=36), nullable=True),
    sa.Column('idempotency_key', sa.String(length=255), nullable=True),
    sa.Column('scheduled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('compensation_results', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IN ('pending', 'running', 'waiting', 'completed', 'failed', 'cancelled', 'compensating', 'compensated', 'compensation_failed')", name=op.f('ck_workflow_executions_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_workflow_executions')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_workflow_executions_idempotency_key'))
    )
    op.create_index('ix_workflow_executions_deadline', 'workflow_executions', ['deadline_at'], unique=False, postgresql_where=sa.text('deadline_at IS NOT NULL'), sqlite_where=sa.text('deadline_at IS NOT NULL'))
    op.create_index('ix_workflow_executions_lease', 'workflow_executions', ['lease_expires_at'], unique=False, postgresql_where=sa.text('lease_owner IS NOT NULL'), sqlite_where=sa.text('lease_owner IS NOT NULL'))
    op.create_index(op.f('ix_workflow_executions_parent_id'), 'workflow_executions', ['parent_id'], unique=False)
    op.create_index('ix_workflow_executions_ready', 'workflow_executions', ['ready_at'], unique=False, postgresql_where=sa.text('lease_owner IS NULL AND ready_at IS NOT NULL'), sqlite_where=sa.text('lease_owner IS NULL AND ready_at IS NOT NULL'))
    op.create_index(op.f('ix_workflow_executions_status_created_at'), 'workflow_executions', ['status', 'created_at'], unique=False)
    op.create_index(op.f('ix_workflow_executions_workflow_status_created_at'), 'workflow_executions', ['workflow', 'status', 'created_at'], unique=False)
    op.create_table('step_executions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('execution_id', sa.String(length=36), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('step_name', sa.String(length=255), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('duration_ms', sa.Integer(), nullable=True),
    sa.Column('input', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('output', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('error', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('logs', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('worker', sa.String(length=255), nullable=True),
    sa.Column('is_compensation', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('compensation_for', sa.String(length=255), nullable=True),
    sa.CheckConstraint("status IN ('running', 'completed', 'failed')", name=op.f('ck_step_executions_status')),
    sa.ForeignKeyConstraint(['execution_id'], ['workflow_executions.id'], name=op.f('fk_step_executions_execution_id'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_step_executions')),
    sa.UniqueConstraint('execution_id', 'seq', name=op.f('uq_step_executions_execution_id_seq'))
    )


def downgrade() -> None:
    op.drop_table('step_executions')
    op.drop_index(op.f('ix_workflow_executions_workflow_status_created_at'), table_name='workflow_executions')
    op.drop_index(op.f('ix_workflow_executions_status_created_at'), table_name='workflow_executions')
    op.drop_index('ix_workflow_executions_ready', table_name='workflow_executions', postgresql_where=sa.text('lease_owner IS NULL AND ready_at IS NOT NULL'), sqlite_where=sa.text('lease_owner IS NULL AND ready_at IS NOT NULL'))
    op.drop_index(op.f('ix_workflow_executions_parent_id'), table_name='workflow_executions')
    op.drop_index('ix_workflow_executions_lease', table_name='workflow_executions', postgresql_where=sa.text('lease_owner IS NOT NULL'), sqlite_where=sa.text('lease_owner IS NOT NULL'))
    op.drop_index('ix_workflow_executions_deadline', table_name='workflow_executions', postgresql_where=sa.text('deadline_at IS NOT NULL'), sqlite_where=sa.text('deadline_at IS NOT NULL'))
    op.drop_table('workflow_executions')
