"""The pure core: statuses, retry delays and the transition rules. No I/O, no Celery, no SQL.

Internal: no stability promise.
"""
