"""Credentials: a static bearer key, or an AccessKey/SecretKey pair that mints HS256 JWTs.

Nothing here ever shows a secret: ``repr`` hides keys and tokens alike.
"""

from __future__ import annotations

import os
import warnings

import jwt

from .clock import Clock, SystemClock, token_clock
from .errors import ConfigurationError

__all__ = ["AccessKeyPair", "Credentials", "StaticKey", "credentials_from"]


class Credentials:
    """Gives the ``Authorization`` header for each request."""

    def authorization(self) -> str:
        raise NotImplementedError

    def token_rejected(self, authorization: str, code: int | None) -> None:
        """The server said the token in ``authorization`` is not (yet) valid (1003/1004)."""

    def identity(self) -> str:
        """What names the account (the access key, or the API key); only ever stored hashed,
        see :func:`~kling_async.slots.account_key`."""
        raise NotImplementedError

    def secrets(self) -> tuple[str, ...]:
        """Every secret string these credentials hold or have sent, for redacting server
        echoes of them (a key, an AK/SK, the current token)."""
        return ()


class StaticKey(Credentials):
    """A plain bearer key: a relay's ``sk-...`` key or a newer official console API key."""

    __slots__ = ("_header",)

    def __init__(self, key: str) -> None:
        if not isinstance(key, str) or not key.strip():
            raise ValueError("api_key must be a non-empty string")
        self._header = f"Bearer {key.strip()}"

    def authorization(self) -> str:
        return self._header

    def identity(self) -> str:
        return self._header.removeprefix("Bearer ")

    def secrets(self) -> tuple[str, ...]:
        return (self._header.removeprefix("Bearer "),)

    def __repr__(self) -> str:
        return "StaticKey(***)"


class AccessKeyPair(Credentials):
    """AK/SK → ``Authorization: Bearer <JWT>`` (kling-api.md §1.1).

    Claims: ``iss`` = AK, ``exp`` = now + ``ttl``, ``nbf`` = now − skew. The token is cached and
    minted again ``margin`` seconds before it expires, so a long poll never presents a token
    that runs out on the way. When the server answers 1003 (not yet valid: its clock is behind
    ours) the skew allowance doubles, up to five minutes; on 1003 or 1004 the cached token is
    dropped so the retry carries a fresh one.
    """

    __slots__ = ("_ak", "_clock", "_expires", "_header", "_sk", "margin", "skew", "ttl")

    def __init__(
        self,
        access_key: str,
        secret_key: str,
        *,
        ttl: float = 1800.0,
        margin: float = 60.0,
        skew: float = 5.0,
        clock: Clock | None = None,
    ) -> None:
        for name, value in (("access_key", access_key), ("secret_key", secret_key)):
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{name} must be a non-empty string")
        if ttl <= margin:
            raise ValueError("ttl must be longer than the re-mint margin")
        self._ak = access_key.strip()
        self._sk = secret_key.strip()
        self.ttl = ttl
        self.margin = margin
        self.skew = skew
        self._clock = clock or SystemClock()
        self._header = ""
        self._expires = 0.0

    def authorization(self) -> str:
        now = self._clock.time()
        if not self._header or now >= self._expires - self.margin:
            self._header = "Bearer " + self._mint(now)
            self._expires = int(now) + self.ttl
        return self._header

    def _mint(self, now: float) -> str:
        claims = {"iss": self._ak, "exp": int(now + self.ttl), "nbf": int(now - self.skew)}
        with warnings.catch_warnings():
            # PyJWT warns about HMAC keys under 32 bytes; the SK is whatever Kling issued, so the
            # warning would only be noise for every user.
            warnings.simplefilter(
                "ignore", getattr(jwt.warnings, "InsecureKeyLengthWarning", Warning)
            )
            return jwt.encode(claims, self._sk, algorithm="HS256", headers={"typ": "JWT"})

    def token_rejected(self, authorization: str, code: int | None) -> None:
        if authorization != self._header:
            return  # another request already replaced that token
        if code == 1003:
            self.skew = min(self.skew * 2, 300.0)
        self._header = ""

    def identity(self) -> str:
        return self._ak

    def secrets(self) -> tuple[str, ...]:
        token = self._header.removeprefix("Bearer ")
        return (self._ak, self._sk, token) if token else (self._ak, self._sk)

    def __repr__(self) -> str:
        return "AccessKeyPair(access_key=***, secret_key=***)"


def credentials_from(
    api_key: str | None,
    access_key: str | None,
    secret_key: str | None,
    clock: Clock,
) -> Credentials:
    """The credentials the arguments name, else the ``KLING_*`` environment variables."""
    if api_key is not None and (access_key is not None or secret_key is not None):
        raise ConfigurationError("pass either api_key= or access_key= + secret_key=, not both")
    if api_key is None and access_key is None and secret_key is None:
        api_key = os.environ.get("KLING_API_KEY") or None
        if api_key is None:
            access_key = os.environ.get("KLING_ACCESS_KEY") or None
            secret_key = os.environ.get("KLING_SECRET_KEY") or None
    if api_key is not None:
        return StaticKey(api_key)
    if access_key is None or secret_key is None:
        raise ConfigurationError(
            "no Kling credentials: pass api_key= (a relay or console API key) or access_key= "
            "and secret_key=, or set KLING_API_KEY, or KLING_ACCESS_KEY and KLING_SECRET_KEY"
        )
    return AccessKeyPair(access_key, secret_key, clock=token_clock(clock))
