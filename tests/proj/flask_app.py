"""The app-factory project as workers load it: ``celery -A tests.proj.flask_app worker``.
Settings come from the environment the test passes: DT_BROKER, DT_DB, DT_PREFIX, DT_QUEUE."""

import os

from tests.proj.flask_style import create_app, make_durable

durable = make_durable(os.environ["DT_DB"], os.environ["DT_PREFIX"], os.environ["DT_QUEUE"])

# A test suite that builds the app once per test module does this several times in one
# process. The worker gets the last app, with one pair of tasks and one set of handlers.
for _ in range(3):
    app = create_app(durable, os.environ["DT_BROKER"], os.environ["DT_QUEUE"])
durable.init_app(app)  # once more, as an extension's init may be repeated: does nothing
