"""``GET /account/costs``: the account's resource packs, as its balance knobs say
(kling-api-more-kinds.md 11; kling-api.md 5.1).

Query: ``start_time`` and ``end_time`` (Unix ms) required, ``resource_pack_name`` optional
(exact). A missing or non-integer time is a 1201/400 (the docs give no code; the table's
"illegal value"). Answer ``data = {code: 0, msg, resource_pack_subscribe_infos: [...]}`` —
the nested ``code``/``msg`` (``msg``, not ``message``) of the docs.

The packs follow the knobs: ``packs={"video": 100, ...}`` gives one pack per type, named as
the docs' samples are ("Video Generation - ...": the name is the only hint of the product);
``balance_units`` gives one pack with no product in its name; no balance (unlimited) gives one
pack of 10**9 units. ``remaining_quantity`` is live here (the real one lags up to 12 h);
``status`` is ``runOut`` at zero, else ``online``. Which packs a window selects is undocumented
(one third-party note suggests by purchase time): a pack is listed when its ``purchase_time``
falls within ``[start_time, end_time]``, and the emulator's packs were bought a day before it
started. The docs ask callers for QPS <= 1 without saying what happens above it: a second call
within one clock second is refused with 1302/429, so a client that floods is caught.

The relay docs document no ``/account/costs``: the relay flavour answers 404/1203 like any
unknown route.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from kling_async.testing._limits import AccountLimits
from kling_async.testing._replies import ApiError

__all__ = ["AccountPacks"]

DAY = 86_400.0
UNLIMITED = 1e9
_NAMES = {
    "video": "Video Generation - emulator",
    "image": "Image Generation - emulator",
    "try-on": "Virtual Try-on - emulator",
}
_SHARED = "Emulator pack - all products"
_UNLIMITED = "Emulator pack - unlimited"


class AccountPacks:
    """Renders the packs of one account from its :class:`AccountLimits`."""

    def __init__(self, limits: AccountLimits, started_at: float) -> None:
        self._limits = limits
        self._bought = started_at - DAY
        self._last_call: float | None = None

    def costs(self, query: Mapping[str, str], now: float) -> dict[str, Any]:
        start = _millis_param(query, "start_time")
        end = _millis_param(query, "end_time")
        if self._last_call is not None and now - self._last_call < 1.0:
            raise ApiError(429, 1302, "request too frequent: keep /account/costs at QPS <= 1")
        self._last_call = now
        name = query.get("resource_pack_name") or None
        bought = round(self._bought * 1000)
        shown = [
            self._pack(pack_name, total, left)
            for pack_name, total, left in self._quantities()
            if start <= bought <= end and (name is None or name == pack_name)
        ]
        return {"code": 0, "msg": "", "resource_pack_subscribe_infos": shown}

    def _quantities(self) -> list[tuple[str, float, float]]:
        limits = self._limits
        if limits.packs is not None:
            return [
                (_NAMES[p], limits.initial_packs[p], limits.packs[p])
                for p in _NAMES
                if p in limits.packs
            ]
        if limits.balance is not None:
            return [(_SHARED, limits.initial_balance or 0.0, limits.balance)]
        return [(_UNLIMITED, UNLIMITED, UNLIMITED)]

    def _pack(self, name: str, total: float, left: float) -> dict[str, Any]:
        bought = round(self._bought * 1000)
        return {
            "resource_pack_name": name,
            "resource_pack_id": hashlib.md5(name.encode()).hexdigest(),  # an id, not security
            "resource_pack_type": "decreasing_total",
            "total_quantity": float(total),
            "remaining_quantity": max(0.0, float(left)),
            "purchase_time": bought,
            "effective_time": bought,
            "invalid_time": bought + round(365 * DAY * 1000),
            "status": "online" if left > 0 else "runOut",
        }


def _millis_param(query: Mapping[str, str], name: str) -> int:
    text = query.get(name)
    if not text:
        raise ApiError.invalid(f"{name} is required (Unix milliseconds)")
    try:
        return int(text)
    except ValueError:
        raise ApiError.invalid(f"{name} must be an integer of Unix milliseconds") from None
