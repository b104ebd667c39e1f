"""Account-level refusals: account state (1100, 1101), permission (1103), content policy
(1301) and the IP allowlist (1304), each with the HTTP status of kling-api.md 7.

What triggers them on the real service is not documented, so each is a knob of the emulator
that a test sets to get the refusal: ``account_state`` ("arrears" -> 1101, "abnormal" ->
1100: creates are refused, reads still answer, so a caller can still fetch what it paid for);
``forbidden`` (kind or model names the account may not use -> 1103/403 on create);
``blocked_prompts`` (regular expressions; a prompt, negative prompt or lip-sync text that
matches one -> 1301/400, "content-security policy triggered"); ``allowed_ips`` (addresses
allowed to call -> 1304/429 for any other, on every API route, before authentication).
1300 (platform policy) has no documented trigger at all: plan it with ``emu.refuse(1300)``.

Create checks run after the body's own validation (a malformed body is a 1201 first) and
before the limits (1302, 1102, 1303): a refused create creates nothing and costs nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from kling_async.testing._replies import ApiError

__all__ = ["AccountPolicy", "AccountState"]

AccountState = Literal["ok", "arrears", "abnormal"]
_STATE_CODES = {"arrears": 1101, "abnormal": 1100}
# Where the kinds keep the text a content filter reads (kling-api.md 3.1, 5.2).
_TEXT_FIELDS = ("prompt", "negative_prompt")
_NESTED_TEXT = (("input", "text"),)


class AccountPolicy:
    """The refusal knobs of one account; all off by default."""

    def __init__(
        self,
        *,
        account_state: AccountState = "ok",
        forbidden: Iterable[str] = (),
        blocked_prompts: Iterable[str] = (),
        allowed_ips: Iterable[str] | None = None,
    ) -> None:
        if account_state not in ("ok", "arrears", "abnormal"):
            raise ValueError("account_state must be 'ok', 'arrears' or 'abnormal'")
        self.account_state: AccountState = account_state
        self.forbidden = frozenset(forbidden)
        self.blocked_prompts = tuple(re.compile(p) for p in blocked_prompts)
        self.allowed_ips = None if allowed_ips is None else frozenset(allowed_ips)

    def check_caller(self, remote: str | None) -> None:
        """1304/429 unless ``remote`` is allowed (kling-api.md 7, IP whitelist policy)."""
        if self.allowed_ips is not None and remote not in self.allowed_ips:
            raise ApiError.documented(1304)

    def check_create(self, kind: str, model: str | None, body: Mapping[str, Any]) -> None:
        """The account's refusals of a valid create body, in the order of the table."""
        code = _STATE_CODES.get(self.account_state)
        if code is not None:
            raise ApiError.documented(code)
        for name in (kind, model):
            if name is not None and name in self.forbidden:
                raise ApiError.documented(
                    1103, f"No permission to access {name}: not enabled for this account"
                )
        for text in _texts(body):
            if any(p.search(text) for p in self.blocked_prompts):
                raise ApiError.documented(1301)


def _texts(body: Mapping[str, Any]) -> list[str]:
    found = [body[f] for f in _TEXT_FIELDS if isinstance(body.get(f), str)]
    for outer, inner in _NESTED_TEXT:
        nested = body.get(outer)
        if isinstance(nested, dict) and isinstance(nested.get(inner), str):
            found.append(nested[inner])
    return found
