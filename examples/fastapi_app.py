"""A FastAPI service that extends videos with Kling and streams their progress.

One ``KlingClient`` lives as long as the app (opened and closed by the lifespan) and is shared
by every request; all watchers ride on its one poll scheduler. Kling's callbacks, posted to
``/kling/callback``, feed that scheduler, so an open event stream hears of a change at once
instead of at the next poll.

    pip install 'kling-async[cli]' fastapi uvicorn
    export KLING_ACCESS_KEY=... KLING_SECRET_KEY=...
    export PUBLIC_URL=https://you.example KLING_WEBHOOK_SECRET=whsec_...   # for callbacks
    uvicorn examples.fastapi_app:app

    curl -X POST localhost:8000/videos/VIDEO_ID/extend -H 'content-type: application/json' \\
         -d '{"prompt": "the camera pulls back"}'
    curl -N localhost:8000/tasks/TASK_ID/events

Routes:

* ``POST /videos/{video_id}/extend``: start an extend (JSON body: ``prompt``,
  ``negative_prompt``, ``cfg_scale``, ``parent_task_id``); answers 202 with the task id.
  An ``Idempotency-Key`` header becomes the create's ``external_task_id``: a client that
  retries with the same key gets the same task, paid once. When the account's slots stay full
  for ``slot_timeout`` seconds it answers 503 with ``Retry-After`` (nothing was created), and
  409 when the key already names a different request's task.
* ``GET /tasks/{task_id}``: the task as it is now.
* ``GET /tasks/{task_id}/events``: server-sent events, one ``status`` event per change, then
  ``end``.
* ``POST /kling/callback``: where Kling posts status changes (``callback_url``).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel

from kling_async import (
    APIError,
    ExternalIdConflictError,
    KlingClient,
    KlingError,
    RequestValidationError,
    ResponseFormatError,
    SlotTimeoutError,
    Task,
)
from kling_async.webhooks import MAX_BODY, CallbackReceiver, SignatureError


class ExtendBody(BaseModel):
    prompt: str | None = None
    negative_prompt: str | None = None
    cfg_scale: float | None = None
    parent_task_id: str | None = None


def task_view(task: Task) -> dict[str, Any]:
    video = task.video
    return {
        "task_id": task.task_id,
        "status": task.task_status.value,
        "message": task.task_status_msg,
        "video": None if video is None else {"id": video.id, "url": video.url},
    }


def sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


async def bounded_body(request: Request, limit: int = MAX_BODY) -> bytes | None:
    """The request body, or ``None`` once it passes ``limit`` bytes (anyone can post to a
    callback URL: ``await request.body()`` would hold however much they send in memory)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def default_client() -> KlingClient:
    # A request waits at most 10 s for a free slot, well inside a proxy's 60-s cut: past that
    # it answers 503 and its client comes back later, instead of hanging until it gives up.
    return KlingClient(slot_timeout=10.0)


def create_app(
    *,
    client_factory: Callable[[], KlingClient] = default_client,
    public_url: str | None = None,
    webhook_secret: str | None = None,
) -> FastAPI:
    """The app. ``client_factory`` makes the one client (default: from KLING_* variables);
    ``public_url`` is where Kling can reach this app (callbacks are asked for only if set)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with client_factory() as kling:
            app.state.kling = kling
            app.state.callbacks = CallbackReceiver(secret=webhook_secret, client=kling)
            yield

    app = FastAPI(lifespan=lifespan)
    callback_url = f"{public_url.rstrip('/')}/kling/callback" if public_url else None

    @app.post("/videos/{video_id}/extend", status_code=202)
    async def extend(video_id: str, body: ExtendBody, request: Request) -> dict[str, Any]:
        kling: KlingClient = request.app.state.kling
        key = request.headers.get("idempotency-key")  # the caller's retry-safe name for it
        try:
            task = await kling.extend_video(
                video_id,
                callback_url=callback_url,
                external_task_id=key,
                **body.model_dump(exclude_none=True),
            )
        except RequestValidationError as exc:
            raise HTTPException(422, {"field": exc.field, "reason": exc.reason}) from exc
        except SlotTimeoutError as exc:  # the account is full: nothing was created
            raise HTTPException(503, "all task slots are busy", {"Retry-After": "30"}) from exc
        except ExternalIdConflictError as exc:
            existing = exc.task.task_id if exc.task else None
            raise HTTPException(409, {"message": exc.message, "task_id": existing}) from exc
        except APIError as exc:
            detail = {"code": exc.code, "message": exc.message, "request_id": exc.request_id}
            raise HTTPException(502, detail) from exc
        return {**task_view(task), "events": f"/tasks/{task.task_id}/events"}

    @app.get("/tasks/{task_id}")
    async def get_task(task_id: str, request: Request) -> dict[str, Any]:
        kling: KlingClient = request.app.state.kling
        try:
            return task_view(await kling.get_task(task_id))
        except APIError as exc:
            raise HTTPException(404 if exc.http_status == 404 else 502, exc.message) from exc

    @app.get("/tasks/{task_id}/events")
    async def task_events(task_id: str, request: Request) -> StreamingResponse:
        kling: KlingClient = request.app.state.kling

        async def stream() -> AsyncIterator[str]:
            # Leaving this generator (the client went away) closes the watch: polling stops.
            try:
                async with kling.watch([task_id], timeout=1800) as changes:
                    async for change in changes:
                        if change.error is not None:
                            yield sse("error", {"task_id": task_id, "error": str(change.error)})
                        else:
                            yield sse("status", task_view(change.task))
            except KlingError as exc:
                yield sse("error", {"task_id": task_id, "error": str(exc)})
            yield sse("end", {"task_id": task_id})

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    @app.post("/kling/callback")
    async def kling_callback(request: Request) -> JSONResponse:
        receiver: CallbackReceiver = request.app.state.callbacks
        body = await bounded_body(request)
        if body is None:
            return JSONResponse({"ok": False, "error": "body too large"}, status_code=413)
        try:
            await receiver.receive(request.headers.items(), body)
        except SignatureError:
            return JSONResponse({"ok": False, "error": "bad signature"}, status_code=401)
        except ResponseFormatError:
            return JSONResponse({"ok": False, "error": "not a Kling callback"}, status_code=400)
        return JSONResponse({"ok": True})

    return app


app = create_app(
    public_url=os.environ.get("PUBLIC_URL"),
    webhook_secret=os.environ.get("KLING_WEBHOOK_SECRET"),
)
