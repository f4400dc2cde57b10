"""the in-flight index no longer names where an execution stands: a checkpoint that moves an
execution to its next step changes ``current_node`` and ``node_shape``, and an index on them
made every such update write an entry in every index of the table (no HOT update); ``durable
plan`` finds the in-flight rows by (workflow, version) and reads where they stand from the table

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None

TABLE = 'workflow_executions'
INDEX = 'ix_workflow_executions_in_flight'
IN_FLIGHT_WHERE = sa.text("status IN ('pending', 'running', 'waiting', 'compensating')")


def upgrade() -> None:
    op.drop_index(INDEX, table_name=TABLE, postgresql_where=IN_FLIGHT_WHERE, sqlite_where=IN_FLIGHT_WHERE)
    op.create_index(INDEX, TABLE, ['workflow', 'version'], unique=False, postgresql_where=IN_FLIGHT_WHERE,
                    sqlite_where=IN_FLIGHT_WHERE)


def downgrade() -> None:
    op.drop_index(INDEX, table_name=TABLE, postgresql_where=IN_FLIGHT_WHERE, sqlite_where=IN_FLIGHT_WHERE)
    op.create_index(INDEX, TABLE, ['workflow', 'version', 'current_node', 'node_shape'], unique=False,
                    postgresql_include=['id'], postgresql_where=IN_FLIGHT_WHERE, sqlite_where=IN_FLIGHT_WHERE)
