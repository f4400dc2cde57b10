"""Benchmarks of durable-celery against plain Celery (run ``python -m bench.bench``)."""
