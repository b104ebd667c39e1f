"""A crash-proof record of a batch of paid creates.

:mod:`.records` holds what every journal speaks (:class:`Intent`, :class:`JournalEntry`, the
errors); :mod:`.sqlite` is the embedded storage, one SQLite file. A second storage is a sibling
module behind the same methods.
"""

from __future__ import annotations

from ._schema import SCHEMA_VERSION
from .records import (
    OUTCOMES,
    Intent,
    JournalClosedError,
    JournalEntry,
    JournalError,
    JournalFormatError,
)
from .sqlite import Journal

__all__ = [
    "OUTCOMES",
    "SCHEMA_VERSION",
    "Intent",
    "Journal",
    "JournalClosedError",
    "JournalEntry",
    "JournalError",
    "JournalFormatError",
]
