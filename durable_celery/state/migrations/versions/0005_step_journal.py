"""the step journal (child workflows, awaited tasks, checkpointed values, emitted events) and
events emitted by name

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
KINDS_BEFORE = "kind IN ('sleep', 'event', 'any', 'all', 'input')"
KINDS = ("kind IN ('sleep', 'event', 'any', 'all', 'input', 'child', 'task', 'start', 'record', 'emit')")


def _schema() -> str | None:
    # ALTER TABLE statements do not go through the schema_translate_map; name the schema.
    return context.config.attributes.get("schema")


def upgrade() -> None:
    schema = _schema()
    with op.batch_alter_table('waits', schema=schema) as batch:  # SQLite rebuilds the table for the CHECK
        batch.add_column(sa.Column('ref', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True))
        batch.drop_constraint(op.f('ck_waits_kind'), type_='check')
        batch.create_check_constraint(op.f('ck_waits_kind'), KINDS)
    with op.batch_alter_table('events', schema=schema) as batch:
        batch.add_column(sa.Column('broadcast_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                                   nullable=True))
        batch.create_unique_constraint(op.f('uq_events_execution_id_broadcast_id'), ['execution_id', 'broadcast_id'])
    op.create_table('broadcasts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('payload', JSON, nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_broadcasts')),
    )
    op.create_index(op.f('ix_broadcasts_name_created_at'), 'broadcasts', ['name', 'created_at'], unique=False)


def downgrade() -> None:
    schema = _schema()
    op.drop_index(op.f('ix_broadcasts_name_created_at'), table_name='broadcasts')
    op.drop_table('broadcasts')
    with op.batch_alter_table('events', schema=schema) as batch:
        batch.drop_constraint(op.f('uq_events_execution_id_broadcast_id'), type_='unique')
        batch.drop_column('broadcast_id')
    with op.batch_alter_table('waits', schema=schema) as batch:
        batch.drop_constraint(op.f('ck_waits_kind'), type_='check')
        batch.create_check_constraint(op.f('ck_waits_kind'), KINDS_BEFORE)
        batch.drop_column('sent_at')
        batch.drop_column('ref')
