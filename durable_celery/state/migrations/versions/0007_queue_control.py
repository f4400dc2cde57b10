"""controlled queues: slots held (or waited for) by executions, pause, rate-limit windows

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

TABLE = 'workflow_executions'
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
SLOT_WHERE = sa.text('slot IS NOT NULL')


def _schema() -> str | None:
    # ALTER TABLE statements do not go through the schema_translate_map; name the schema.
    return context.config.attributes.get("schema")


def upgrade() -> None:
    with op.batch_alter_table(TABLE, schema=_schema()) as batch:
        batch.add_column(sa.Column('slot', sa.String(length=255), nullable=True))
        batch.add_column(sa.Column('slot_key', sa.String(length=255), nullable=True))
    op.create_index('ix_workflow_executions_slot', TABLE, ['slot', 'slot_key'], unique=False,
                    postgresql_where=SLOT_WHERE, sqlite_where=SLOT_WHERE)
    op.create_table('queue_control',
    sa.Column('queue', sa.String(length=255), nullable=False),
    sa.Column('key', sa.String(length=255), server_default='', nullable=False),
    sa.Column('paused', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('queue', 'key', name=op.f('pk_queue_control')),
    )
    op.create_table('queue_starts',
    sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
    sa.Column('queue', sa.String(length=255), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_queue_starts')),
    )
    op.create_index(op.f('ix_queue_starts_queue_key_started_at'), 'queue_starts', ['queue', 'key', 'started_at'],
                    unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_queue_starts_queue_key_started_at'), table_name='queue_starts')
    op.drop_table('queue_starts')
    op.drop_table('queue_control')
    op.drop_index('ix_workflow_executions_slot', table_name=TABLE, postgresql_where=SLOT_WHERE,
                  sqlite_where=SLOT_WHERE)
    with op.batch_alter_table(TABLE, schema=_schema()) as batch:
        batch.drop_column('slot_key')
        batch.drop_column('slot')
