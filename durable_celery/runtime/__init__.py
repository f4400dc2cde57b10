"""The Celery integration: tasks, the step runner, dispatch, leases and the beat tick.

Internal: no stability promise.
"""
