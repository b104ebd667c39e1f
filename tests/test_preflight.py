"""``extend_many(..., preflight=...)``: the batch's units estimated and compared with the packs
before anything is sent; a shortfall is a PreflightBalanceError with no create on the wire."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kling_async import (
    FakeClock,
    ImageGenerationRequest,
    InsufficientBalanceError,
    NotFoundError,
    PreflightBalanceError,
    RequestValidationError,
    TextToVideoRequest,
    UnitCosts,
    VideoExtendRequest,
    VirtualTryOnRequest,
)
from kling_async.account import ResourcePack, ResourcePacks
from kling_async.batch.preflight import shortfall

from .conftest import MakeClient, MakeEmulator, requests_to


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(autojump=True)


async def run(batch: Any) -> list[str]:
    return [outcome.outcome async for outcome in batch]


def extends(emu: Any, n: int) -> list[VideoExtendRequest]:
    seed = emu.add_video()
    return [VideoExtendRequest(video_id=seed.video_id, prompt=f"p{i}") for i in range(n)]


async def test_a_batch_its_balance_cannot_cover_sends_nothing(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    emu = await make_emulator(balance_units=2)
    kling = make_client(emu)
    with pytest.raises(PreflightBalanceError) as caught:
        await run(kling.extend_many(extends(emu, 3), preflight=True))
    refused = caught.value
    assert isinstance(refused, InsufficientBalanceError) and refused.code is None
    assert (refused.needed, refused.remaining) == ({"video": 3.0}, {"video": 0.0, None: 2.0})
    assert refused.estimated == ("video-extend",)
    assert "3 video units" in str(refused) and "2 any-product" in str(refused)
    assert requests_to(emu, "create") == 0 and emu.balance == 2


async def test_a_batch_that_fits_runs(make_emulator: MakeEmulator, make_client: MakeClient) -> None:
    emu = await make_emulator(balance_units=3)
    kling = make_client(emu)
    assert await run(kling.extend_many(extends(emu, 3), preflight=True)) == ["succeed"] * 3
    assert requests_to(emu, "account") == 1 and emu.balance == 0


async def test_without_preflight_no_costs_are_read_and_1102_stops_the_batch(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    emu = await make_emulator(balance_units=2)
    kling = make_client(emu)
    outcomes = await run(kling.extend_many(extends(emu, 3), slots=1))
    assert sorted(outcomes) == ["not_sent", "succeed", "succeed"]
    assert requests_to(emu, "account") == 0


async def test_each_product_is_counted_against_its_own_packs(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    emu = await make_emulator(packs={"video": 10})
    kling = make_client(emu)
    images = [ImageGenerationRequest(prompt="x", n=4)]
    with pytest.raises(PreflightBalanceError) as caught:
        await run(kling.extend_many(images, preflight=True))
    assert caught.value.needed == {"image": 1.0}
    assert await run(kling.extend_many(extends(emu, 2), preflight=True)) == ["succeed"] * 2


async def test_your_own_unit_costs_are_used(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    emu = await make_emulator(balance_units=5)
    kling = make_client(emu)
    costs = UnitCosts(units={"video-extend": 2.0}, documented=frozenset({"video-extend"}))
    with pytest.raises(PreflightBalanceError) as caught:
        await run(kling.extend_many(extends(emu, 3), preflight=costs))
    assert caught.value.needed == {"video": 6.0} and caught.value.estimated == ()
    assert requests_to(emu, "create") == 0


async def test_a_resumed_batch_counts_only_what_its_journal_has_not_seen(
    make_emulator: MakeEmulator, make_client: MakeClient, tmp_path: Path
) -> None:
    emu = await make_emulator(balance_units=3)
    kling = make_client(emu)
    requests = extends(emu, 3)
    journal = tmp_path / "batch.sqlite"
    assert await run(kling.extend_many(requests[:2], journal=journal)) == ["succeed"] * 2
    outcomes = await run(kling.extend_many(requests, journal=journal, preflight=True))
    assert sorted(outcomes) == ["succeed"] * 3  # 1 unit needed, 1 left
    assert emu.stats.created == 3


async def test_a_bad_request_anywhere_is_raised_before_any_create(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    emu = await make_emulator()
    kling = make_client(emu)
    rows: list[Any] = [{"video_id": emu.add_video().video_id}, {"video_id": "v", "promt": "typo"}]
    with pytest.raises(RequestValidationError):
        await run(kling.extend_many(rows, preflight=True))
    assert requests_to(emu, "create") == 0 and requests_to(emu, "account") == 0


async def test_on_a_relay_the_missing_route_stops_the_batch_unsent(
    make_emulator: MakeEmulator, make_client: MakeClient
) -> None:
    emu = await make_emulator()
    kling = make_client(emu, "relay")
    with pytest.raises(NotFoundError):
        await run(kling.extend_many(extends(emu, 1), preflight=True))
    assert requests_to(emu, "create") == 0


def test_unit_estimates_by_kind_mode_duration_and_images() -> None:
    costs = UnitCosts()
    assert costs.of(TextToVideoRequest(prompt="x")) == ("video", 1.0)
    assert costs.of(TextToVideoRequest(prompt="x", duration="10", mode="pro")) == ("video", 7.0)
    assert costs.of(ImageGenerationRequest(prompt="x", n=8)) == ("image", 2.0)
    assert costs.of(VirtualTryOnRequest(human_image="https://x.example/a.png")) == ("try-on", 1.0)
    assert costs.of(VideoExtendRequest(video_id="v")) == ("video", 1.0)


def pack(name: str, left: float, status: str = "online") -> ResourcePack:
    return ResourcePack(resource_pack_name=name, remaining_quantity=left, status=status)


def test_packs_naming_no_product_make_up_any_shortfall_once() -> None:
    packs = ResourcePacks(
        (
            pack("Video Generation - 10", 2),
            pack("Trial-Image-1000Units-9Con-1Months", 1),
            pack("Mystery pack", 3),
            pack("Video Generation - old", 50, status="expired"),
        )
    )
    assert shortfall({"video": 5, "image": 1}, packs, 0) is None  # 2 + 3 of the mystery pack
    assert shortfall({"video": 4, "image": 3}, packs, 0) == {"video": 2, "image": 1, None: 3}
    assert shortfall({"try-on": 3}, packs, 0) is None
