"""The example shop's Django project. As in Celery's Django recipe, the Celery app (and the
Durable engine beside it) is loaded with the project, so ``@shared_task`` and
``manage.py durable_migrate`` find them."""

from shop.celery import app as celery_app
from shop.celery import durable

__all__ = ["celery_app", "durable"]
