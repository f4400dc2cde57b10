"""The state store: SQLAlchemy Core tables and the transactions over them.

Internal: no stability promise. Every write is a ``*_txn(conn, ...)`` function that runs inside the
caller's transaction; :class:`durable_celery.state.db.Database` owns engines and transactions.
"""
