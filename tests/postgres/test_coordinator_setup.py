"""Turning the coordinator on: what ``coordinator=`` accepts, what an unreachable database does
to creates (they fail before any POST; nothing is held), and what is stored of the credentials."""

from __future__ import annotations

import socket

import pytest

from kling_async import ConfigurationError, KlingClient, VideoExtendRequest
from kling_async.errors import DatabaseError
from kling_async.postgres.coordinator import PostgresCoordinator
from kling_async.slots.coordination import LocalCoordinator, account_key
from kling_async.testing import KlingEmulator


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_without_a_coordinator_nothing_is_shared() -> None:
    kling = KlingClient(api_key="k", base_url="http://127.0.0.1:9")
    assert isinstance(kling.coordinator, LocalCoordinator)
    assert not kling.coordinator.shared
    assert kling.scheduler.relay is None  # callbacks go nowhere else


@pytest.mark.parametrize("value", ["redis://localhost/0", "batch.sqlite", ""])
def test_a_coordinator_must_be_a_postgresql_dsn(value: str) -> None:
    with pytest.raises(ConfigurationError, match="postgresql://"):
        KlingClient(api_key="k", base_url="http://127.0.0.1:9", coordinator=value)


@pytest.mark.parametrize("knob", ["lease", "recheck", "replay"])
def test_coordinator_times_must_be_positive(knob: str) -> None:
    with pytest.raises(ConfigurationError, match=knob):
        PostgresCoordinator("postgresql://db/kling", **{knob: 0})


def test_the_account_is_a_digest_of_the_key_and_base_url() -> None:
    key = "sk-very-secret-relay-key-0001"
    one = account_key(key, "https://relay.example/kling")
    assert key not in one and len(one) == 32
    assert one == account_key(key, "https://relay.example/kling/")
    assert one != account_key(key, "https://other.example/kling")
    assert one != account_key(key + "2", "https://relay.example/kling")
    kling = KlingClient(
        api_key=key, base_url="https://relay.example/kling", coordinator="postgresql://db/k"
    )
    assert kling.coordinator.account == one  # type: ignore[attr-defined]


async def test_an_unreachable_database_fails_creates_before_any_post() -> None:
    secret = "db-password-789"
    dsn = f"postgresql://kling:{secret}@127.0.0.1:{_closed_port()}/kling"
    async with KlingEmulator() as emu:
        kling = KlingClient(**emu.client_kwargs(), coordinator=dsn)
        assert secret not in repr(kling.coordinator)
        with pytest.raises(DatabaseError) as caught:
            await kling.__aenter__()
        assert secret not in str(caught.value)
        request = VideoExtendRequest(video_id=emu.add_video().video_id)
        with pytest.raises(DatabaseError):
            await kling.create(request)
        assert kling.gate.in_use == 0
        assert emu.stats.created == 0 and not emu.stats.creates  # never sent uncounted
        await kling.aclose()


def test_one_coordinator_serves_one_client() -> None:
    coordinator = PostgresCoordinator("postgresql://db/kling")
    KlingClient(api_key="k", base_url="http://127.0.0.1:9", coordinator=coordinator)
    with pytest.raises(ConfigurationError, match="one client"):
        KlingClient(api_key="k", base_url="http://127.0.0.1:9", coordinator=coordinator)


def test_a_watch_made_outside_the_loop_connects_later() -> None:
    coordinator = PostgresCoordinator("postgresql://db/kling")
    kling = KlingClient(api_key="k", base_url="http://127.0.0.1:9", coordinator=coordinator)
    kling.watch(["task-1"])  # no running loop: nothing started, nothing leaked
    assert coordinator._starting is None
