"""PostgreSQL for many processes on one account: the connection and the schema, in one place.

Optional: it needs the ``postgres`` extra (``pip install 'kling-async[postgres]'``, which brings
``asyncpg``). Nothing here is imported by the rest of the library until a DSN is used, so the
library works without the extra. :mod:`._connect` opens a small pool for a DSN (or the ``PG*``
environment variables) and keeps the password out of every message; :mod:`._schema` is the
versioned list of migrations, applied on first use under an advisory lock.
"""

from __future__ import annotations

from ._connect import Database, is_dsn, redact_dsn
from ._schema import LATEST_VERSION, MIGRATIONS, Migration, migrate, schema_version

__all__ = [
    "LATEST_VERSION",
    "MIGRATIONS",
    "Database",
    "Migration",
    "is_dsn",
    "migrate",
    "redact_dsn",
    "schema_version",
]
