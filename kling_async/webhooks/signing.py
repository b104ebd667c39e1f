"""Standard Webhooks signatures, as Kling's callbacks use them (kling-api.md 6.3).

signed string = ``{webhook-id}.{webhook-timestamp}.{raw body}``; key = base64-decoded secret
(after the ``whsec_`` prefix); header = ``v1,<base64 HMAC-SHA256>``, several space-separated during
a secret rotation. Shared by the emulator (which signs) and :mod:`kling_async.webhooks` (which
verifies), so both follow one definition.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

__all__ = ["SignatureError", "WebhookSecret", "sign", "verify"]

_PREFIX = "whsec_"
DEFAULT_TOLERANCE = 300.0


class SignatureError(ValueError):
    """A callback's signature headers are missing, malformed, stale or do not match."""


class WebhookSecret:
    """A ``whsec_...`` secret. Its ``repr``/``str`` never show the key."""

    __slots__ = ("_key",)

    def __init__(self, secret: str | bytes) -> None:
        if isinstance(secret, bytes):
            self._key = secret
            return
        raw = secret[len(_PREFIX) :] if secret.startswith(_PREFIX) else secret
        try:
            self._key = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("webhook secret is not valid base64 after the whsec_ prefix") from None
        if not self._key:
            raise ValueError("webhook secret is empty")

    def digest(self, msg_id: str, timestamp: int, body: bytes) -> str:
        signed = f"{msg_id}.{timestamp}.".encode() + body
        mac = hmac.new(self._key, signed, hashlib.sha256).digest()
        return base64.b64encode(mac).decode()

    def __repr__(self) -> str:
        return "WebhookSecret('whsec_***')"

    __str__ = __repr__


def _secret(secret: WebhookSecret | str | bytes) -> WebhookSecret:
    return secret if isinstance(secret, WebhookSecret) else WebhookSecret(secret)


def sign(secret: WebhookSecret | str | bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for one message."""
    return "v1," + _secret(secret).digest(msg_id, timestamp, body)


def verify(
    secret: WebhookSecret | str | bytes,
    *,
    msg_id: str | None,
    timestamp: str | int | None,
    signature: str | None,
    body: bytes,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE,
) -> None:
    """Raise :class:`SignatureError` unless one of the ``v1`` signatures matches.

    Timestamps further than ``tolerance`` seconds from ``now`` (either way) are rejected, which
    stops replays of old callbacks.
    """
    if not msg_id or timestamp is None or timestamp == "" or not signature:
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature header")
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        raise SignatureError("webhook-timestamp is not an integer") from None
    if abs(now - ts) > tolerance:
        raise SignatureError(f"webhook-timestamp is {now - ts:+.0f}s away from now")
    expected = _secret(secret).digest(msg_id, ts, body).encode()
    for candidate in signature.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected):
            return
    raise SignatureError("no webhook signature matches")
