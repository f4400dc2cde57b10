"""The second deploy with the first kept registered beside it: executions started on version 1
finish on it; new ones start on version 2."""

from tests.proj.versions.v1 import fanout as fanout_v1  # noqa: F401
from tests.proj.versions.v1 import inserted as inserted_v1  # noqa: F401
from tests.proj.versions.v1 import renamed as renamed_v1  # noqa: F401
from tests.proj.versions.v1 import retried as retried_v1  # noqa: F401
from tests.proj.versions.v2 import fanout, inserted, renamed, retried  # noqa: F401
