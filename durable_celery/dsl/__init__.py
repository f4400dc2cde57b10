"""The workflow DSL (internal modules; the public names are re-exported by ``durable_celery``)."""
