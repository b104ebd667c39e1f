"""A crash-proof record of a batch of paid creates.

:mod:`.records` holds what every journal speaks (:class:`Intent`, :class:`JournalEntry`, the
errors); :mod:`.sqlite` is the embedded storage, one SQLite file; :mod:`.postgres` the shared
one, a batch in a PostgreSQL database that several workers drain together (same methods, plus
claims).
"""

from __future__ import annotations

from ._schema import SCHEMA_VERSION
from .postgres import SharedJournal
from .records import (
    OUTCOMES,
    ClaimLostError,
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
    "ClaimLostError",
    "Intent",
    "Journal",
    "JournalClosedError",
    "JournalEntry",
    "JournalError",
    "JournalFormatError",
    "SharedJournal",
]
