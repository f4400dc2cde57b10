"""tracing: the W3C trace context of each execution's span (OpenTelemetry), so the spans of its
step attempts join one trace however long it waits

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

TABLE = 'workflow_executions'


def _schema() -> str | None:
    # ALTER TABLE statements do not go through the schema_translate_map; name the schema.
    return context.config.attributes.get("schema")


def upgrade() -> None:
    # nullable, no default: adding it rewrites no row
    with op.batch_alter_table(TABLE, schema=_schema()) as batch:
        batch.add_column(sa.Column('trace_context', sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table(TABLE, schema=_schema()) as batch:
        batch.drop_column('trace_context')
