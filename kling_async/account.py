"""The account's resource packs (``GET /account/costs``, kling-api-more-kinds.md 11), as typed
values; :meth:`KlingClient.resource_packs <kling_async.client.KlingClient.resource_packs>`
reads them.

A pack says how many units it had and has left, when it was bought and when it lapses, and
its ``status`` (``toBeOnline``, ``online``, ``expired``, ``runOut``). No field says which
product (video, image, try-on) a pack serves: only the name hints at it ("Video Generation -
10,000 entries", "Trial-Image-1000Units-9Con-1Months"), so :attr:`ResourcePack.product` reads
it from the name and is ``None`` when the name names none. ``remaining_quantity`` lags by up
to 12 hours on the real service.
"""

from __future__ import annotations

import re
from typing import Literal

import attrs

__all__ = ["Product", "ResourcePack", "ResourcePacks", "product_of"]

Product = Literal["video", "image", "try-on"]

# Try-on first: "Virtual Try-on" packs may say "image" too; then the first of video/image.
_PRODUCT_WORDS: tuple[tuple[Product, re.Pattern[str]], ...] = (
    ("try-on", re.compile(r"try[\s_-]?on", re.IGNORECASE)),
    ("video", re.compile(r"video", re.IGNORECASE)),
    ("image", re.compile(r"image", re.IGNORECASE)),
)


def product_of(name: str) -> Product | None:
    """The product a pack's name names, or ``None``."""
    return next((product for product, word in _PRODUCT_WORDS if word.search(name)), None)


@attrs.frozen
class ResourcePack:
    """One resource pack of the account; times are Unix milliseconds (0: not given)."""

    resource_pack_name: str = ""
    resource_pack_id: str = ""
    resource_pack_type: str = ""  # "decreasing_total" or "constant_period": a billing style
    total_quantity: float = 0.0
    remaining_quantity: float = 0.0
    purchase_time: int = 0
    effective_time: int = 0
    invalid_time: int = 0
    status: str = ""

    @property
    def product(self) -> Product | None:
        return product_of(self.resource_pack_name)

    def usable_at(self, now_ms: int) -> bool:
        """Online and not past its ``invalid_time`` (when it has one) at ``now_ms``."""
        return self.status == "online" and (self.invalid_time == 0 or self.invalid_time > now_ms)


@attrs.frozen
class ResourcePacks:
    """What ``GET /account/costs`` answered: the packs, and the answer's ``request_id``."""

    packs: tuple[ResourcePack, ...] = ()
    request_id: str | None = None

    def remaining(self, product: Product | None, *, now_ms: int) -> float:
        """Units left in usable packs naming ``product`` (``None``: packs naming none)."""
        return sum(
            p.remaining_quantity
            for p in self.packs
            if p.product == product and p.usable_at(now_ms) and p.remaining_quantity > 0
        )
