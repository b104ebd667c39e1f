"""An emulator of the Kling API for testing code that uses it, over real sockets.

>>> async with KlingEmulator(clock=FakeClock()) as emu:        # doctest: +SKIP
...     parent = emu.add_video(5.0)
...     async with KlingClient(**emu.client_kwargs()) as kling:
...         task = await kling.extend_video(parent.video_id)
...     await emu.clock.advance(400)                             # the task has now succeeded

It serves the task family (text2video, image2video, video-extend, lip-sync, image
generation, virtual try-on) in both flavours (official ``/v1`` with JWT or static keys, relay
``/kling/v1`` with ``sk-`` keys), computes each task's life from its clock, enforces the
account's task slots (per resource-pack pool), balance and rate, serves ``/account/costs``,
refuses as its account knobs say (every code of the error table can be produced), injects
planned or random faults (:class:`Fault`) and delivers signed callbacks. Each rule names its
section of the API notes; docs/emulator-rules.md lists them all, and the knobs for what the
docs leave open. ``python -m kling_async.testing`` serves one standalone.
"""

from __future__ import annotations

from kling_async.testing._callbacks import CallbackRecord
from kling_async.testing._core import EmulatorStats
from kling_async.testing._durations import Durations
from kling_async.testing._emulator import KlingEmulator, SeedVideo
from kling_async.testing._faults import Fault
from kling_async.testing._tasks import TaskRecord

__all__ = [
    "CallbackRecord",
    "Durations",
    "EmulatorStats",
    "Fault",
    "KlingEmulator",
    "SeedVideo",
    "TaskRecord",
]
