"""Moving a Celery canvas to a durable workflow, stage by stage, with the old and the new version
running side by side on one broker. The guide is docs/migrating-from-celery.md.

    python -m examples.migration.stage0_celery       # the canvas on plain Celery
    python -m examples.migration.stage1_from_canvas  # the same canvas as a workflow, beside it
    python -m examples.migration.stage2_steps        # native steps reusing the tasks
    python -m examples.migration.stage3_native       # the finished workflow; the old queue drained

``tasks.py`` holds the project's existing tasks and canvas, shared by every stage unchanged.
``project.py`` reads the services from the environment (Redis and PostgreSQL on localhost by
default) and starts and stops the worker processes of each stage.
"""
