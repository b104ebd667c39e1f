"""What the callback tests share: the official test vector, a signing secret, signed headers,
callback bodies, and driving an emulator, its callbacks and clients until they settle."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from collections.abc import Callable
from typing import Any

from kling_async import FakeClock, KlingClient, StatusChange, TaskStatus
from kling_async.testing import KlingEmulator
from kling_async.webhooks.signing import sign

from ..watching import settle

S, P, OK, FAIL = (
    TaskStatus.SUBMITTED,
    TaskStatus.PROCESSING,
    TaskStatus.SUCCEED,
    TaskStatus.FAILED,
)

# kling-api.md 6.3, the official test vector.
VECTOR_SECRET = "whsec_dGVzdHNlY3JldHRlc3RzZWNyZXR0ZXN0c2VjcmV0MTI="
VECTOR_ID = "9876543210"
VECTOR_TS = 1781080794
VECTOR_BODY = (
    b'{"id":"1234567890","status":"succeeded","message":"","create_time":1781080778802,'
    b'"update_time":1781080794151}'
)
VECTOR_SIGNATURE = "v1,UsKlJP00XoQyOn410NM9xv34sP+Gl0jnOO9Lcpr7NJ4="

SECRET_KEY = b"kling-async-webhook-test-key-32b"
SECRET = "whsec_" + base64.b64encode(SECRET_KEY).decode()


def vector_headers(**override: str) -> dict[str, str]:
    headers = {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TS),
        "webhook-signature": VECTOR_SIGNATURE,
    }
    headers.update(override)
    return headers


def signed(body: bytes, at: float, msg_id: str = "msg_1", secret: str = SECRET) -> dict[str, str]:
    stamp = int(at)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign(secret, msg_id, stamp, body),
    }


def legacy_body(task_id: str = "815336423632572487", status: str = "processing") -> bytes:
    return json.dumps(
        {
            "task_id": task_id,
            "task_status": status,
            "task_status_msg": "",
            "created_at": 1_700_000_000_000,
            "updated_at": 1_700_000_005_000,
        }
    ).encode()


async def quiesce(emu: KlingEmulator, *clients: KlingClient) -> None:
    """Deliver due callbacks and let every poll they or the clock started finish."""
    for _ in range(20):
        before = (len(emu.callbacks), *(c.scheduler.polls_sent for c in clients))
        await emu.flush_callbacks()
        for _ in range(5):
            await asyncio.sleep(0)
        for client in clients:
            await settle(client)
        if before == (len(emu.callbacks), *(c.scheduler.polls_sent for c in clients)):
            return
    raise AssertionError("callbacks and polls never settled")


async def drive(
    clock: FakeClock,
    emu: KlingEmulator,
    clients: tuple[KlingClient, ...],
    done: Callable[[], bool],
    *,
    step: float = 1.0,
    limit: float = 2_000.0,
    on_step: Callable[[], None] | None = None,
) -> None:
    start = clock.monotonic()
    await quiesce(emu, *clients)
    while not done():
        assert clock.monotonic() - start <= limit, "not done in time"
        await clock.advance(step)
        await quiesce(emu, *clients)
        if on_step is not None:
            on_step()


async def collect(watch: Any, sink: list[StatusChange]) -> None:
    async for change in watch:
        sink.append(change)


def histories(changes: list[StatusChange]) -> dict[str, list[StatusChange]]:
    out: dict[str, list[StatusChange]] = {}
    for change in changes:
        out.setdefault(change.task_id, []).append(change)
    return out


def assert_once_each(changes: list[StatusChange], expected: list[TaskStatus]) -> None:
    history = [c.current for c in changes]
    assert history == expected, history
    for before, after in itertools.pairwise(changes):
        assert after.previous == before.current
