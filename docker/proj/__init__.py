"""The example project run by docker-compose.yml: a Celery app with a Durable engine
(proj/celery.py) and one workflow (proj/workflows.py)."""
