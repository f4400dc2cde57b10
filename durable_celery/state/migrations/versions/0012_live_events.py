"""live events: the lifecycle events ``subscribe`` reads (kept a few minutes), woken by
LISTEN/NOTIFY on PostgreSQL

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
JSON = sa.JSON().with_variant(JSONB(), 'postgresql')


def upgrade() -> None:
    op.create_table('live_events',
    sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('execution_id', sa.String(length=36), nullable=True),
    sa.Column('root_id', sa.String(length=36), nullable=True),
    sa.Column('workflow', sa.String(length=255), nullable=True),
    sa.Column('step', sa.String(length=255), nullable=True),
    sa.Column('attempt', sa.Integer(), nullable=True),
    sa.Column('seq', sa.Integer(), nullable=True),
    sa.Column('data', JSON, nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_live_events')),
    )
    op.create_index(op.f('ix_live_events_at'), 'live_events', ['at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_live_events_at'), table_name='live_events')
    op.drop_table('live_events')
