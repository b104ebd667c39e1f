"""Clock skew between this client and the server, read from the server's ``Date`` header.

A JWT is minted on the client's clock (``exp`` = now + 1800, ``nbf`` = now - 5), so a client
clock far off makes every token "expired" (1004) or "not yet valid" (1003), fresh ones too.
The error then says so, with the skew the ``Date`` header shows (one-second resolution, and
the network's delay: only a skew well beyond both is named).
"""

from __future__ import annotations

import email.utils

from .errors import AuthenticationError

__all__ = ["NAMED_SKEW", "name_skew", "skew_from_date"]

#: Seconds of skew worth naming in an error (well beyond Date's resolution and a slow answer).
NAMED_SKEW = 30.0


def skew_from_date(date: str | None, now: float) -> float | None:
    """Server time minus client time (seconds) by an HTTP ``Date`` value; ``None`` if absent or
    unreadable (nothing a server sends is trusted)."""
    if not date or len(date) > 64:
        return None
    try:
        when = email.utils.parsedate_to_datetime(date)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return when.timestamp() - now


def name_skew(error: AuthenticationError, skew: float | None) -> None:
    """Add the skew to a 1003/1004 error's message when it is large enough to be the cause."""
    if skew is None or abs(skew) < NAMED_SKEW:
        return
    side = "behind" if skew > 0 else "ahead of"
    error.message = (
        f"{error.message}; this client's clock is about {abs(skew):.0f} s {side} the server's "
        "(by its Date header): tokens are minted on it, so correct the clock"
    )
    error.clock_skew = skew
    error.args = (error.message,)
