"""The account's throttles: creates per second (1302), balance (1102), task slots (1303).

Checked in that order, after the body has been validated: a request refused for its content is
refused for that first. Balance comes before slots because 1102 is final while 1303 invites a
retry; a client told 1303 while actually out of money would retry forever. A refused create
creates nothing and costs nothing. Slots are held from create until the task is terminal,
computed from the clock (kling-api.md 7.1), so they free themselves without any timer.

kling-api.md 7.1 counts concurrency "separately per resource-pack type (video / image /
virtual try-on)": each kind draws from its row's ``pack`` pool, and ``slot_limit`` (one number
for every pool, or a mapping per pack) bounds each pool on its own. A task holds one slot,
except image generation, which holds one per image (``n``).

Units: ``balance_units`` is one balance every kind draws from; ``packs`` (units per pack type)
gives each type its own, and a kind whose type has no pack is refused with 1102, as an image
create on a video-only account was (kling-api-more-kinds.md 13).
"""

from __future__ import annotations

import collections
import heapq
from collections.abc import Mapping

from kling_async.testing._replies import ApiError

__all__ = ["PACKS", "AccountLimits", "SlotLimit"]

PACKS = ("video", "image", "try-on")
SlotLimit = int | Mapping[str, int | None] | None


class AccountLimits:
    """Knobs and bookkeeping for one account. ``None`` means unlimited."""

    def __init__(
        self,
        *,
        slot_limit: SlotLimit,
        balance_units: float | None,
        unit_cost: float,
        rate_limit: float | None,
        retry_after: float | None,
        packs: Mapping[str, float] | None = None,
    ) -> None:
        _check_slot_limit(slot_limit)
        if rate_limit is not None and rate_limit <= 0:
            raise ValueError("rate_limit must be > 0 or None")
        if unit_cost < 0:
            raise ValueError("unit_cost must be >= 0")
        if packs is not None:
            if balance_units is not None:
                raise ValueError("give balance_units (one balance) or packs (per type), not both")
            unknown = set(packs) - set(PACKS)
            if unknown:
                raise ValueError(f"packs keys must be among {', '.join(PACKS)}: {unknown}")
        self.slot_limit: SlotLimit = slot_limit
        self.balance = balance_units
        self.initial_balance = balance_units
        self.packs: dict[str, float] | None = None if packs is None else dict(packs)
        self.initial_packs: dict[str, float] = dict(packs or {})
        self.unit_cost = unit_cost
        self.rate_limit = rate_limit
        self._retry_headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
        self._slot_ends: dict[str, list[float]] = {p: [] for p in PACKS}  # heaps of end times
        self._recent: collections.deque[float] = collections.deque()  # creates in the last 1 s

    def set_slot_limit(self, value: SlotLimit) -> None:
        _check_slot_limit(value)
        self.slot_limit = value

    def limit_for(self, pack: str) -> int | None:
        if isinstance(self.slot_limit, Mapping):
            return self.slot_limit.get(pack)
        return self.slot_limit

    def slots_in_use(self, now: float, pack: str | None = None) -> int:
        """Slots held by tasks not yet terminal at ``now``, in one pool or (``None``) all."""
        total = 0
        for name in PACKS if pack is None else (pack,):
            ends = self._slot_ends[name]
            while ends and ends[0] <= now:
                heapq.heappop(ends)
            total += len(ends)
        return total

    def check(self, now: float, slots: int = 1, pack: str = "video") -> None:
        """Raise the 429 :class:`ApiError` that refuses a create needing ``slots`` of
        ``pack`` now, if any. A task needing more slots than its pool has is refused with
        1303 every time."""
        while self._recent and self._recent[0] <= now - 1.0:
            self._recent.popleft()
        if self.rate_limit is not None and len(self._recent) + 1 > self.rate_limit:
            raise ApiError(429, 1302, "request too frequent", headers=self._retry_headers)
        if self.packs is not None:
            if pack not in self.packs or self.packs[pack] < self.unit_cost:
                raise ApiError(429, 1102, "Account balance not enough")
        elif self.balance is not None and self.balance < self.unit_cost:
            raise ApiError(429, 1102, "Account balance not enough")
        limit = self.limit_for(pack)
        if limit is not None and self.slots_in_use(now, pack) + slots > limit:
            raise ApiError(
                429, 1303, "parallel task over resource pack limit", headers=self._retry_headers
            )

    def commit(self, now: float, ends_at: float, slots: int = 1, pack: str = "video") -> int:
        """Charge one accepted create holding ``slots`` of ``pack`` until ``ends_at``; returns
        the slots in use afterwards (every pool)."""
        if self.rate_limit is not None:
            self._recent.append(now)
        if self.packs is not None:
            self.packs[pack] -= self.unit_cost
        elif self.balance is not None:
            self.balance -= self.unit_cost
        for _ in range(slots):
            heapq.heappush(self._slot_ends[pack], ends_at)
        return self.slots_in_use(now)


def _check_slot_limit(value: SlotLimit) -> None:
    limits = value.values() if isinstance(value, Mapping) else (value,)
    for limit in limits:
        if limit is not None and (isinstance(limit, bool) or limit < 0):
            raise ValueError("slot_limit must be >= 0 or None (per pack)")
    if isinstance(value, Mapping) and set(value) - set(PACKS):
        raise ValueError(f"slot_limit keys must be among {', '.join(PACKS)}")
