"""Settings of the example shop. The database and the broker come from the environment, with
the local defaults of the project's test services (PostgreSQL and Redis on 127.0.0.1)."""

import os

SECRET_KEY = "example-only-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["*"]
USE_TZ = True
ROOT_URLCONF = "shop.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "durable_celery.contrib.django",  # manage.py durable_migrate
    "orders",
]

_NAME = os.environ.get("SHOP_DB_NAME", "test")
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _NAME,
        "USER": os.environ.get("SHOP_DB_USER", "postgres"),
        "PASSWORD": os.environ.get("SHOP_DB_PASSWORD", ""),
        "HOST": os.environ.get("SHOP_DB_HOST", "127.0.0.1"),
        "PORT": os.environ.get("SHOP_DB_PORT", "5432"),
        # SHOP_TEST_DB_NAME: the database `manage.py test` creates (test_<NAME> by default)
        "TEST": {"NAME": os.environ.get("SHOP_TEST_DB_NAME") or None},
    }
}

# Celery, read by app.config_from_object("django.conf:settings", namespace="CELERY")
CELERY_BROKER_URL = os.environ.get("SHOP_BROKER_URL", "redis://127.0.0.1:6379/0")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# durable-celery, read by DjangoDurable(app): DURABLE_<option> for each option of Durable(...).
# No DURABLE_DATABASE_URL: its tables live in DATABASES["default"], in the schema DURABLE_PREFIX.
DURABLE_PREFIX = os.environ.get("SHOP_DURABLE_PREFIX", "shop_durable")
DURABLE_QUEUE = os.environ.get("SHOP_DURABLE_QUEUE", "shop-durable")
DURABLE_TICK_INTERVAL = 0.5
