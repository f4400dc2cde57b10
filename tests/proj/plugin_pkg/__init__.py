"""A plugin package as a plugin system loads it: ``tasks.setup(app)`` registers its Celery
tasks on the host app, and its workflows sit next to them in ``workflows.py``."""
