"""The account's throttles: creates per second (1302), balance (1102), task slots (1303).

Checked in that order, after the body has been validated: a request refused for its content is
refused for that first. Balance comes before slots because 1102 is final while 1303 invites a
retry; a client told 1303 while actually out of money would retry forever. A refused create
creates nothing and costs nothing. Slots are held from create until the task is terminal,
computed from the clock (kling-api.md 7.1), so they free themselves without any timer. A task
holds one slot, except image generation, which holds one per image (``n``); all kinds share the
one pool (the real service counts video, image and try-on packs apart).
"""

from __future__ import annotations

import collections
import heapq

from kling_async.testing._replies import ApiError

__all__ = ["AccountLimits"]


class AccountLimits:
    """Knobs and bookkeeping for one account. ``None`` means unlimited."""

    def __init__(
        self,
        *,
        slot_limit: int | None,
        balance_units: float | None,
        unit_cost: float,
        rate_limit: float | None,
        retry_after: float | None,
    ) -> None:
        if slot_limit is not None and slot_limit < 0:
            raise ValueError("slot_limit must be >= 0 or None")
        if rate_limit is not None and rate_limit <= 0:
            raise ValueError("rate_limit must be > 0 or None")
        if unit_cost < 0:
            raise ValueError("unit_cost must be >= 0")
        self.slot_limit = slot_limit
        self.balance = balance_units
        self.unit_cost = unit_cost
        self.rate_limit = rate_limit
        self._retry_headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
        self._slot_ends: list[float] = []  # heap: clock time each held slot frees
        self._recent: collections.deque[float] = collections.deque()  # creates in the last 1 s

    def slots_in_use(self, now: float) -> int:
        """Slots held by tasks not yet terminal at ``now``."""
        while self._slot_ends and self._slot_ends[0] <= now:
            heapq.heappop(self._slot_ends)
        return len(self._slot_ends)

    def check(self, now: float, slots: int = 1) -> None:
        """Raise the 429 :class:`ApiError` that refuses a create needing ``slots`` now, if any.
        A task needing more slots than the account has is refused with 1303 every time."""
        while self._recent and self._recent[0] <= now - 1.0:
            self._recent.popleft()
        if self.rate_limit is not None and len(self._recent) + 1 > self.rate_limit:
            raise ApiError(429, 1302, "request too frequent", headers=self._retry_headers)
        if self.balance is not None and self.balance < self.unit_cost:
            raise ApiError(429, 1102, "Account balance not enough")
        if self.slot_limit is not None and self.slots_in_use(now) + slots > self.slot_limit:
            raise ApiError(
                429, 1303, "parallel task over resource pack limit", headers=self._retry_headers
            )

    def commit(self, now: float, ends_at: float, slots: int = 1) -> int:
        """Charge one accepted create holding ``slots`` until ``ends_at``; returns the slots in
        use afterwards."""
        if self.rate_limit is not None:
            self._recent.append(now)
        if self.balance is not None:
            self.balance -= self.unit_cost
        for _ in range(slots):
            heapq.heappush(self._slot_ends, ends_at)
        return self.slots_in_use(now)
