"""waits and events

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def _schema() -> str | None:
    # ALTER TABLE statements do not go through the schema_translate_map; name the schema.
    return context.config.attributes.get("schema")


def upgrade() -> None:
    op.create_table('waits',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('execution_id', sa.String(length=36), nullable=False),
    sa.Column('entered_seq', sa.Integer(), nullable=False),
    sa.Column('idx', sa.Integer(), nullable=False),
    sa.Column('step_name', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('names', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('result', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('seen_event_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('timeout_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('input_type', sa.String(length=32), nullable=True),
    sa.Column('prompt', sa.Text(), nullable=True),
    sa.Column('input_metadata', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('fields', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('choices', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("kind IN ('sleep', 'event', 'any', 'all', 'input')", name=op.f('ck_waits_kind')),
    sa.CheckConstraint("status IN ('pending', 'resolved', 'timed_out', 'cancelled')", name=op.f('ck_waits_status')),
    sa.ForeignKeyConstraint(['execution_id'], ['workflow_executions.id'], name=op.f('fk_waits_execution_id'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_waits')),
    sa.UniqueConstraint('execution_id', 'entered_seq', 'idx', name=op.f('uq_waits_execution_id_entered_seq_idx'))
    )
    op.create_index('ix_waits_due', 'waits', ['timeout_at'], unique=False, postgresql_where=sa.text("status = 'pending' AND timeout_at IS NOT NULL"), sqlite_where=sa.text("status = 'pending' AND timeout_at IS NOT NULL"))
    op.create_index(op.f('ix_waits_kind_status_timeout_at'), 'waits', ['kind', 'status', 'timeout_at'], unique=False)
    op.create_table('events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('execution_id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('consumed_by', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('consumed_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("kind IN ('event', 'input')", name=op.f('ck_events_kind')),
    sa.CheckConstraint("status IN ('pending', 'consumed', 'rejected')", name=op.f('ck_events_status')),
    sa.ForeignKeyConstraint(['consumed_by'], ['waits.id'], name=op.f('fk_events_consumed_by'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['execution_id'], ['workflow_executions.id'], name=op.f('fk_events_execution_id'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events'))
    )
    op.create_index(op.f('ix_events_execution_id_status_name'), 'events', ['execution_id', 'status', 'name'], unique=False)
    op.add_column('workflow_executions', sa.Column('entered_seq', sa.Integer(), server_default='0', nullable=False), schema=_schema())


def downgrade() -> None:
    op.drop_column('workflow_executions', 'entered_seq', schema=_schema())
    op.drop_index(op.f('ix_events_execution_id_status_name'), table_name='events')
    op.drop_table('events')
    op.drop_index(op.f('ix_waits_kind_status_timeout_at'), table_name='waits')
    op.drop_index('ix_waits_due', table_name='waits', postgresql_where=sa.text("status = 'pending' AND timeout_at IS NOT NULL"), sqlite_where=sa.text("status = 'pending' AND timeout_at IS NOT NULL"))
    op.drop_table('waits')
