"""Receiving Kling's task callbacks and feeding them to the watcher.

When a task is created with a ``callback_url``, Kling POSTs the task to it on status changes
(kling-api.md 6). A :class:`CallbackReceiver` checks the Standard-Webhooks signature (when you
have a ``whsec_...`` secret), reads either payload shape, drops repeats, and hands each new event
to your ``on_event`` and to a :class:`~kling_async.KlingClient`'s poll scheduler. A verified
callback counts as an observation; an unverified one only makes the scheduler confirm it with one
GET. Either way a task that callbacks cover is then polled only on a long safety interval, so
``client.watch()`` and ``client.wait()`` see changes as soon as Kling sends them and spend far
fewer requests. Polling never stops entirely: callbacks are not guaranteed to arrive.

FastAPI (or any ASGI framework)::

    import os

    from fastapi import FastAPI
    from kling_async import KlingClient
    from kling_async.webhooks import CallbackReceiver, asgi_app

    kling = KlingClient(access_key=..., secret_key=...)
    receiver = CallbackReceiver(secret=os.environ["KLING_WEBHOOK_SECRET"], client=kling)
    app = FastAPI()
    app.mount("/kling-callback", asgi_app(receiver))
    # A mount matches "/kling-callback/..." only (Starlette redirects the bare path with a 307
    # that a callback sender may not follow), so give callback_url="https://.../kling-callback/",
    # or route the exact path instead (starlette.routing.Route takes an ASGI app as endpoint):
    #     app.router.routes.append(Route("/kling-callback", asgi_app(receiver), methods=["POST"]))

    @app.post("/extend")
    async def extend(video_id: str) -> dict[str, str]:
        task = await kling.extend_video(
            video_id, callback_url="https://you.example/kling-callback/"
        )
        return {"task_id": task.task_id}  # kling.wait(task) now wakes on the callback

aiohttp::

    from aiohttp import web
    from kling_async.webhooks import CallbackEvent, CallbackReceiver, aiohttp_handler

    async def on_event(event: CallbackEvent) -> None:
        print(event.task.task_id, event.task.task_status)

    receiver = CallbackReceiver(secret="whsec_...", client=kling, on_event=on_event)
    app = web.Application()
    app.router.add_post("/kling-callback", aiohttp_handler(receiver))

Both answer ``200 {"ok":true}`` for an accepted or repeated callback, ``401`` for a missing or
bad signature (only when a secret is set), ``400`` for a body that is not a callback, ``413`` for
one over a megabyte, and ``500`` when ``on_event`` raised (so a sender that retries will retry).
Without a secret anyone who knows the URL can post to it: events are then ``verified=False``,
the scheduler never yields a status it has not confirmed with its own GET, at most
``max_unsigned_per_task`` such events per task are passed on, and creating the receiver logs a
warning.
"""

from __future__ import annotations

from .http import MAX_BODY, CallbackApp, aiohttp_handler, asgi_app
from .payload import CallbackEvent, parse_callback
from .receiver import CallbackReceiver
from .signing import SignatureError

__all__ = [
    "MAX_BODY",
    "CallbackApp",
    "CallbackEvent",
    "CallbackReceiver",
    "SignatureError",
    "aiohttp_handler",
    "asgi_app",
    "parse_callback",
]
