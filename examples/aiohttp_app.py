"""An aiohttp.web service that extends videos with Kling and streams their progress.

The same service as ``fastapi_app.py``: one ``KlingClient`` for the app's lifetime (a cleanup
context opens and closes it), an endpoint that starts an extend, server-sent events from
``client.watch()``, and a callback route whose deliveries wake those watchers at once.

    export KLING_ACCESS_KEY=... KLING_SECRET_KEY=...
    export PUBLIC_URL=https://you.example KLING_WEBHOOK_SECRET=whsec_...   # for callbacks
    python examples/aiohttp_app.py            # serves on http://127.0.0.1:8080

Routes: ``POST /videos/{video_id}/extend``, ``GET /tasks/{task_id}``,
``GET /tasks/{task_id}/events`` (text/event-stream), ``POST /kling/callback``.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from kling_async import APIError, KlingClient, KlingError, RequestValidationError, Task
from kling_async.webhooks import MAX_BODY, CallbackReceiver, aiohttp_handler

KLING = web.AppKey("kling", KlingClient)
CALLBACKS = web.AppKey("callbacks", CallbackReceiver)


def task_view(task: Task) -> dict[str, Any]:
    video = task.video
    return {
        "task_id": task.task_id,
        "status": task.task_status.value,
        "message": task.task_status_msg,
        "video": None if video is None else {"id": video.id, "url": video.url},
    }


def sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def create_app(
    *,
    client_factory: Callable[[], KlingClient] = KlingClient,
    public_url: str | None = None,
    webhook_secret: str | None = None,
) -> web.Application:
    """The app. ``client_factory`` makes the one client (default: from KLING_* variables);
    ``public_url`` is where Kling can reach this app (callbacks are asked for only if set)."""
    callback_url = f"{public_url.rstrip('/')}/kling/callback" if public_url else None

    async def kling_client(app: web.Application) -> AsyncIterator[None]:
        async with client_factory() as kling:
            app[KLING] = kling
            app[CALLBACKS] = CallbackReceiver(secret=webhook_secret, client=kling)
            yield

    async def extend(request: web.Request) -> web.Response:
        kling = request.app[KLING]
        fields = await request.json() if request.can_read_body else {}
        allowed = {"prompt", "negative_prompt", "cfg_scale", "parent_task_id"}
        try:
            task = await kling.extend_video(
                request.match_info["video_id"],
                callback_url=callback_url,
                **{k: v for k, v in fields.items() if k in allowed},
            )
        except RequestValidationError as exc:
            return web.json_response({"field": exc.field, "reason": exc.reason}, status=422)
        except APIError as exc:
            detail = {"code": exc.code, "message": exc.message, "request_id": exc.request_id}
            return web.json_response(detail, status=502)
        view = {**task_view(task), "events": f"/tasks/{task.task_id}/events"}
        return web.json_response(view, status=202)

    async def get_task(request: web.Request) -> web.Response:
        try:
            task = await request.app[KLING].get_task(request.match_info["task_id"])
        except APIError as exc:
            return web.json_response({"error": exc.message}, status=exc.http_status or 502)
        return web.json_response(task_view(task))

    async def task_events(request: web.Request) -> web.StreamResponse:
        task_id = request.match_info["task_id"]
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        try:
            async with request.app[KLING].watch([task_id], timeout=1800) as changes:
                async for change in changes:
                    if change.error is not None:
                        data = {"task_id": task_id, "error": str(change.error)}
                        await response.write(sse("error", data))
                    else:
                        await response.write(sse("status", task_view(change.task)))
        except KlingError as exc:
            await response.write(sse("error", {"task_id": task_id, "error": str(exc)}))
        await response.write(sse("end", {"task_id": task_id}))
        await response.write_eof()
        return response

    async def kling_callback(request: web.Request) -> web.StreamResponse:
        return await aiohttp_handler(request.app[CALLBACKS])(request)

    # client_max_size bounds every body read here, callbacks included (aiohttp answers 413).
    app = web.Application(client_max_size=MAX_BODY)
    app.cleanup_ctx.append(kling_client)
    app.router.add_post("/videos/{video_id}/extend", extend)
    app.router.add_get("/tasks/{task_id}", get_task)
    app.router.add_get("/tasks/{task_id}/events", task_events)
    app.router.add_post("/kling/callback", kling_callback)
    return app


if __name__ == "__main__":
    web.run_app(
        create_app(
            public_url=os.environ.get("PUBLIC_URL"),
            webhook_secret=os.environ.get("KLING_WEBHOOK_SECRET"),
        ),
        host="127.0.0.1",
        port=8080,
    )
