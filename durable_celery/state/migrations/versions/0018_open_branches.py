"""a parent waiting for a parallel block counts its branches not yet ended (``open_branches``):
the branch that ends last wakes it in the statement that records its end, with no second
transaction and no look at its siblings

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


TABLE = 'workflow_executions'


def _schema() -> str | None:
    # ALTER TABLE statements do not go through the schema_translate_map; name the schema.
    return context.config.attributes.get("schema")


def upgrade() -> None:
    # nullable, no default: instant on Postgres (no table rewrite); a block spawned before this
    # revision has no count, and its branches end the way they did before
    with op.batch_alter_table(TABLE, schema=_schema()) as batch:
        batch.add_column(sa.Column('open_branches', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table(TABLE, schema=_schema()) as batch:
        batch.drop_column('open_branches')
