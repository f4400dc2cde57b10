"""Shims for the oldest Python this package supports; each one names the version that retires it."""

from __future__ import annotations

import sys
from enum import Enum

if sys.version_info >= (3, 11):
    from enum import StrEnum
else:  # Python 3.9 and 3.10: remove with them

    class StrEnum(str, Enum):
        """``enum.StrEnum`` of Python 3.11: members are, print and format as their plain strings."""

        __str__ = str.__str__
        __format__ = str.__format__  # type: ignore[assignment]

__all__ = ["StrEnum"]
