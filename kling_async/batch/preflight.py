"""A batch's pre-flight: estimate the units its requests will spend, compare them with what
the account's resource packs have left, and refuse before any create is sent.

The docs give unit prices for few kinds (kling-api-more-kinds.md: multi-image2image 16 units
per image; motion control per second); for the rest, :class:`UnitCosts` holds **estimates**
(1 unit per 5 s of standard-mode video, ``pro`` 3.5 times that, after the relay note of
kling-api.md 3.2; an extend adds about 5 s of its source's mode, which a request does not
show, so standard is assumed), and the refusal names the kinds it estimated. Pass your own
:class:`UnitCosts` for your account's prices.

Packs count by the product their name names (video, image, try-on: the API has no product
field); a pack naming none may serve any product. Only ``online`` packs not past their
``invalid_time`` count. The real ``remaining_quantity`` lags up to 12 hours, so an estimate
that fits can still meet 1102 mid-batch, which stops the batch's creates cleanly as always.
A resumed batch counts only the requests its journal has not seen.
"""

from __future__ import annotations

import collections
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping
from typing import Any

import attrs

from ..account import Product, ResourcePacks
from ..clock import Clock
from ..errors import PreflightBalanceError
from ..requests import CreateRequest
from .inputs import RequestLike, as_request, each, request_key

__all__ = ["Preflight", "UnitCosts", "pending_requests"]

PackSource = Callable[[], Awaitable[ResourcePacks]]


def _default_units() -> dict[str, float]:
    return {
        "text2video": 1.0,  # per 5 s, std
        "image2video": 1.0,
        "video-extend": 1.0,  # one ~5 s extension, std assumed
        "lip-sync": 1.0,
        "image-generation": 0.25,  # per image
        "virtual-try-on": 1.0,
        "multi-image2image": 16.0,  # per image: documented
    }


def _default_products() -> dict[str, Product]:
    return {
        "image-generation": "image",
        "multi-image2image": "image",
        "image-expand": "image",
        "virtual-try-on": "try-on",
    }


@attrs.frozen
class UnitCosts:
    """Units per request, by kind: ``units[kind]`` per task, per 5 s of video for kinds with
    a ``duration``, per image for kinds with ``n``; times ``pro_factor`` in ``pro`` mode.
    ``products`` maps a kind to its pack (others: ``"video"``); ``documented`` names the kinds
    whose figure is a documented price, the rest being estimates; ``default`` prices a kind
    the table does not name."""

    units: Mapping[str, float] = attrs.field(factory=_default_units)
    products: Mapping[str, Product] = attrs.field(factory=_default_products)
    pro_factor: float = 3.5
    default: float = 1.0
    documented: frozenset[str] = frozenset({"multi-image2image"})

    def of(self, request: CreateRequest) -> tuple[Product, float]:
        """The pack and the units one request is estimated to spend."""
        units = self.units.get(request.kind, self.default)
        duration = getattr(request, "duration", None)
        if duration is not None:
            units *= float(duration) / 5.0
        images = getattr(request, "n", None)
        if isinstance(images, int):
            units *= images
        if getattr(request, "mode", None) == "pro":
            units *= self.pro_factor
        return self.products.get(request.kind, "video"), units


def shortfall(
    needed: Mapping[Product, float], packs: ResourcePacks, now_ms: int
) -> dict[str | None, float] | None:
    """What the packs have left per product, if it cannot cover ``needed``; else ``None``.
    Packs naming no product make up any product's shortfall, each unit once."""
    left: dict[str | None, float] = {p: packs.remaining(p, now_ms=now_ms) for p in needed}
    shared = packs.remaining(None, now_ms=now_ms)
    if shared:
        left[None] = shared
    missing = sum(max(0.0, units - left[p]) for p, units in needed.items())
    return left if missing > shared + 1e-9 else None


class Preflight:
    """The check a batch runs on its pending requests before sending any."""

    def __init__(self, packs: PackSource, clock: Clock, costs: UnitCosts | None = None) -> None:
        self._packs = packs
        self._clock = clock
        self.costs = costs or UnitCosts()

    async def __call__(self, requests: Iterable[CreateRequest]) -> None:
        needed: dict[Product, float] = collections.defaultdict(float)
        guessed: set[str] = set()
        for request in requests:
            product, units = self.costs.of(request)
            needed[product] += units
            if request.kind not in self.costs.documented:
                guessed.add(request.kind)
        if not needed:
            return
        packs = await self._packs()
        left = shortfall(needed, packs, round(self._clock.time() * 1000))
        if left is not None:
            wanted: dict[str | None, float] = {p: units for p, units in needed.items()}
            raise PreflightBalanceError(
                needed=wanted, remaining=left, estimated=tuple(sorted(guessed))
            )


async def pending_requests(
    requests: Iterable[RequestLike] | AsyncIterable[RequestLike],
    journalled: Mapping[str, Any],
    check: Callable[[list[CreateRequest]], Awaitable[None]],
) -> list[CreateRequest]:
    """Read every request (a bad one raises here, before anything is sent), run ``check`` on
    those the journal has not seen, and return them all for the batch to send."""
    built = [as_request(item) async for item in each(requests)]
    seen: collections.Counter[str] = collections.Counter()
    await check([r for r in built if request_key(r, seen) not in journalled])
    return built
