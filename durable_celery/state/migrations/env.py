"""Alembic environment for durable-celery's own tables. Run through
:mod:`durable_celery.state.migrate`, which passes the connection and the schema prefix."""

from __future__ import annotations

from alembic import context

from durable_celery.state.tables import metadata

config = context.config
connection = config.attributes["connection"]
schema = config.attributes.get("schema")

context.configure(
    connection=connection.execution_options(schema_translate_map={None: schema}) if schema else connection,
    target_metadata=metadata,
    version_table="alembic_version",
    version_table_schema=schema,
    transaction_per_migration=False,
)
with context.begin_transaction():
    context.run_migrations()
