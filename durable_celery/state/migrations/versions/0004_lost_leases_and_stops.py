"""lost leases per attempt, re-dispatch back-off, stops that wait for a step in flight

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
TABLE = 'workflow_executions'


def _schema() -> str | None:
    # ALTER TABLE statements do not go through the schema_translate_map; name the schema.
    return context.config.attributes.get("schema")


def upgrade() -> None:
    with op.batch_alter_table(TABLE, schema=_schema()) as batch:
        batch.add_column(sa.Column('lost_leases', sa.Integer(), server_default='0', nullable=False))
        batch.add_column(sa.Column('redispatches', sa.Integer(), server_default='0', nullable=False))
        batch.add_column(sa.Column('stopping', JSON, nullable=True))
        batch.add_column(sa.Column('stop_status', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table(TABLE, schema=_schema()) as batch:
        for column in ('stop_status', 'stopping', 'redispatches', 'lost_leases'):
            batch.drop_column(column)
