"""One process of a coordinated account, for the multi-process coordinator tests:
``python coordinator_child.py CONFIG_JSON``.

``mode`` is ``hold`` (take ``n`` slots, print ``held``, then sleep until killed),
``create-hold`` (create ``n`` tasks, print their ids, then sleep until killed), ``create``
(create ``n`` video extends, wait for each, print a JSON summary), ``learned`` (connect, print
the limit the gate starts from) or ``receive`` (serve a callback receiver, print its URL, run
until stdin closes). ``client``: the client's keyword arguments; ``dsn``, ``lease``: the
coordinator's; ``scale``, ``origin``: the emulator's clock, shared.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from aiohttp import web

from kling_async import KlingClient, ScaledClock, VideoExtendRequest
from kling_async.postgres.coordinator import PostgresCoordinator
from kling_async.webhooks import CallbackReceiver, aiohttp_handler


async def main(config: dict[str, Any]) -> None:
    clock = ScaledClock.following(float(config["scale"]), origin=float(config["origin"]))
    mode = config["mode"]
    coordinator = None
    if mode != "create-alone":  # the same, without a coordinator: to see what it prevents
        coordinator = PostgresCoordinator(config["dsn"], lease=float(config.get("lease", 30.0)))
    async with KlingClient(
        **config["client"], clock=clock, coordinator=coordinator, slots=config.get("slots")
    ) as kling:
        if mode == "hold":
            for _ in range(int(config["n"])):
                await kling.gate.acquire()
            print("held", flush=True)
            await asyncio.sleep(3600)
        elif mode == "create-hold":
            request = VideoExtendRequest(video_id=config["video_id"], prompt="p")
            tasks = [await kling.create(request) for _ in range(int(config["n"]))]
            print(json.dumps([t.task_id for t in tasks]), flush=True)
            await asyncio.sleep(3600)
        elif mode in ("create", "create-alone"):
            request = VideoExtendRequest(video_id=config["video_id"], prompt="p")

            async def one() -> str:
                task = await kling.wait(await kling.create(request))
                return task.task_status.value

            ends = await asyncio.gather(*(one() for _ in range(int(config["n"]))))
            print(json.dumps({"ends": ends, "refusals": kling.gate.refusals}), flush=True)
        elif mode == "learned":
            print(json.dumps({"learned": kling.gate.learned}), flush=True)
        elif mode == "receive":
            receiver = CallbackReceiver(secret=config.get("secret"), client=kling)
            app = web.Application()
            app.router.add_post("/kling-callback", aiohttp_handler(receiver))
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            host, port = runner.addresses[0][:2]
            print(f"http://{host}:{port}/kling-callback", flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
            print(json.dumps({"accepted": receiver.accepted}), flush=True)
            await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
