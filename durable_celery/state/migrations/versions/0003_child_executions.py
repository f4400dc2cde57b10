"""child executions (parallel branches, foreach iterations), loops and compensation plans

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
TABLE = 'workflow_executions'


def _schema() -> str | None:
    # ALTER TABLE statements do not go through the schema_translate_map; name the schema.
    return context.config.attributes.get("schema")


def upgrade() -> None:
    schema = _schema()
    with op.batch_alter_table(TABLE, schema=schema) as batch:  # SQLite rebuilds the table for the CHECK
        batch.add_column(sa.Column('kind', sa.String(length=16), server_default='workflow', nullable=False))
        batch.add_column(sa.Column('root_id', sa.String(length=36), nullable=True))
        batch.add_column(sa.Column('parent_seq', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('branch_key', sa.String(length=255), nullable=True))
        batch.add_column(sa.Column('branch_index', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('item', JSON, nullable=True))
        batch.add_column(sa.Column('loops', JSON, nullable=True))
        batch.add_column(sa.Column('compensation_plan', JSON, nullable=True))
        batch.create_check_constraint(op.f('ck_workflow_executions_kind'),
                                      "kind IN ('workflow', 'branch', 'iteration', 'sequence')")
        batch.drop_index(op.f('ix_workflow_executions_parent_id'))
        batch.create_index(op.f('ix_workflow_executions_parent_id_parent_seq_branch_index'),
                           ['parent_id', 'parent_seq', 'branch_index'], unique=False)
        batch.create_index(op.f('ix_workflow_executions_root_id'), ['root_id'], unique=False)
    op.execute(sa.text(f"UPDATE {schema + '.' if schema else ''}{TABLE} SET root_id = id WHERE root_id IS NULL"))


def downgrade() -> None:
    with op.batch_alter_table(TABLE, schema=_schema()) as batch:
        batch.drop_index(op.f('ix_workflow_executions_root_id'))
        batch.drop_index(op.f('ix_workflow_executions_parent_id_parent_seq_branch_index'))
        batch.create_index(op.f('ix_workflow_executions_parent_id'), ['parent_id'], unique=False)
        batch.drop_constraint(op.f('ck_workflow_executions_kind'), type_='check')
        for column in ('compensation_plan', 'loops', 'item', 'branch_index', 'branch_key', 'parent_seq', 'root_id',
                       'kind'):
            batch.drop_column(column)
