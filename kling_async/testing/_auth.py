"""``Authorization: Bearer <x>`` checks for both flavours (kling-api.md 1, 9).

Official routes take an HS256 JWT (``iss`` = access key, signed with the secret key) or a
static console API key; relay routes take only relay keys. Token times (``exp``, ``nbf``) are
judged on the emulator's token clock: real time when its task clock is a ``ScaledClock``, as
Kling checks tokens on real time (kling-api.md 1.1) whatever the scale does to task durations;
the task clock itself when it is a ``FakeClock``, so a test can step a token to expiry.
Messages never echo a credential.
"""

from __future__ import annotations

import warnings

import attrs
import jwt

from kling_async.testing._kinds import Flavour
from kling_async.testing._replies import ApiError

__all__ = ["Credentials"]

_SCHEME = "Bearer "


def _refuse(code: int, message: str) -> ApiError:
    return ApiError(401, code, message)


@attrs.frozen(repr=False)
class Credentials:
    """The emulated account's keys."""

    access_key: str
    secret_key: str
    api_keys: tuple[str, ...]
    relay_keys: tuple[str, ...]

    def __repr__(self) -> str:
        return f"Credentials(access_key={self.access_key!r}, secret_key='***', ...)"

    def check(self, header: str | None, flavour: Flavour, now: float) -> None:
        """Raise the 401 :class:`ApiError` (1001-1004) unless ``header`` authenticates."""
        if header is None or not header.strip():
            raise _refuse(1001, "Authorization header is empty")
        token = header[len(_SCHEME) :] if header.startswith(_SCHEME) else ""
        if token.split() != [token]:
            raise _refuse(1002, "Authorization must be 'Bearer <token>' with exactly one space")
        if flavour == "relay":
            if token not in self.relay_keys:
                raise _refuse(1002, "Authorization is invalid: unknown API key")
            return
        if token not in self.api_keys:
            self._check_jwt(token, now)

    def _check_jwt(self, token: str, now: float) -> None:
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError:
            raise _refuse(
                1002, "Authorization is invalid: neither a known API key nor a JWT"
            ) from None
        if unverified.get("iss") != self.access_key:
            raise _refuse(1002, "Authorization is invalid: unknown access key (iss)")
        try:
            with warnings.catch_warnings():
                # The account's secret is whatever the user configured; short ones still verify.
                warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
                claims = jwt.decode(
                    token,
                    self.secret_key,
                    algorithms=["HS256"],
                    options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
                )
        except jwt.InvalidTokenError:
            raise _refuse(1002, "Authorization is invalid: signature does not verify") from None
        exp, nbf = _number(claims.get("exp")), _number(claims.get("nbf"))
        if exp is None or (claims.get("nbf") is not None and nbf is None):
            raise _refuse(1002, "Authorization is invalid: exp (and nbf, if sent) must be numbers")
        if nbf is not None and nbf > now:
            raise _refuse(1003, "Authorization is not yet valid (nbf is in the future)")
        if exp <= now:
            raise _refuse(1004, "Authorization has expired (exp)")


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)
