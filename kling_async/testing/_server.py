"""The HTTP side: routes built from the kind table, each mounted for both flavours.

Per kind: ``POST {path}`` (create), ``GET {path}`` (list, or ``?external_task_id=``) and
``GET {path}/{task_id or external_task_id}``, under ``/v1`` and again under ``/kling/v1``. The
relay's generic poller ``GET /kling/v1/{action}/{action2}/{task_id}`` is exactly the relay
copies of those single-task routes (``images/generations``, ``videos/text2video`` ...), so it
answers as the kind's own GET does; any other pair is an unknown route. Generated files are
served from ``/media/videos/{id}.mp4`` and ``/media/images/{id}.png`` (``.wm.`` copies too).
``GET /account/costs`` (official only: the relay docs have no such route) is :mod:`._packs`.

Every API request goes: draw a fault (or a planned refusal) -> the IP allowlist (1304) ->
authenticate (on the token clock: real time under a scaled clock, see
``KlingEmulator(token_clock=)``) -> parse and act -> spoil the answer as the fault says ->
count it in ``stats.requests``. Unknown routes and wrong methods get JSON error envelopes
too (1203 / 1202, HTTP 404: kling-api.md 7), never aiohttp's text pages.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from kling_async.clock import Clock
from kling_async.testing._auth import Credentials
from kling_async.testing._core import EmulatorCore
from kling_async.testing._faults import Fault, FaultPlan, Route, refusal, tampered
from kling_async.testing._kinds import KINDS, Flavour, Kind
from kling_async.testing._replies import ApiError, Reply, failure, success
from kling_async.testing._wire import IMAGE_MEDIA_DIR, VIDEO_MEDIA_DIR

__all__ = ["EmulatorServer"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Action = Callable[[web.Request, Kind, Flavour], Awaitable[Reply]]

PREFIXES: tuple[tuple[Flavour, str], ...] = (("official", ""), ("relay", "/kling"))
MAX_BODY = 32 * 1024 * 1024
_MP4_HEADER = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
_PNG_HEADER = b"\x89PNG\r\n\x1a\n"
# Not a task kind (no row of the table): the route's name for faults and counts is "create".
IDENTIFY_FACE = Kind("identify-face", "/v1/videos/identify-face")


class EmulatorServer:
    """Builds the ``aiohttp.web`` application over one :class:`EmulatorCore`."""

    def __init__(
        self,
        core: EmulatorCore,
        credentials: Credentials,
        faults: FaultPlan,
        *,
        token_clock: Clock,
        relay_list_route: bool = True,
    ) -> None:
        self._core = core
        self._token_clock = token_clock
        self._credentials = credentials
        self._faults = faults
        self._relay_list_route = relay_list_route

    def application(self) -> web.Application:
        # Room for two 10 MB images in base64 (kling-api.md 5.2); aiohttp's default is 1 MB.
        app = web.Application(middlewares=[self._unrouted], client_max_size=MAX_BODY)
        add = app.router
        for kind in KINDS:
            for flavour, prefix in PREFIXES:
                collection = prefix + kind.path
                if kind.validate is not None:
                    add.add_post(collection, self._endpoint("create", kind, flavour, self._create))
                add.add_get(
                    collection, self._endpoint("list", kind, flavour, self._list), allow_head=False
                )
                add.add_get(
                    collection + "/{ident}",
                    self._endpoint("get", kind, flavour, self._get),
                    allow_head=False,
                )
        for flavour, prefix in PREFIXES:  # a synchronous call, no task (more-kinds §7.1)
            identify = self._endpoint("create", IDENTIFY_FACE, flavour, self._identify_face)
            add.add_post(prefix + IDENTIFY_FACE.path, identify)
        account = self._endpoint("account", KINDS[0], "official", self._costs)
        add.add_get("/account/costs", account, allow_head=False)
        add.add_get(VIDEO_MEDIA_DIR + "{name}", self._media, allow_head=False)
        add.add_get(IMAGE_MEDIA_DIR + "{name}", self._image_media, allow_head=False)
        return app

    def _endpoint(self, route: Route, kind: Kind, flavour: Flavour, action: Action) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            drawn = self._faults.draw(route)
            fault = drawn.fault if drawn is not None else None
            if fault is Fault.DROP_BEFORE:
                return self._drop(request, route)
            response = refusal(fault, drawn)
            if response is None:
                reply = await self._answer(request, kind, flavour, action)
                if fault is Fault.DROP_AFTER_CREATE:
                    return self._drop(request, route)
                if fault is Fault.SLOW and drawn is not None:
                    await asyncio.sleep(drawn.delay)  # real seconds: client timeouts are real
                response = tampered(fault, reply, route)
            # The clock tokens are judged on, as a real server's Date header shows its clock: a
            # client whose tokens are refused reads its skew from it.
            now = self._token_clock.time()
            response.headers["Date"] = email.utils.formatdate(now, usegmt=True)
            self._count(request, route, response.status)
            return response

        return handle

    async def _answer(
        self, request: web.Request, kind: Kind, flavour: Flavour, action: Action
    ) -> Reply:
        try:
            self._core.policy.check_caller(request.remote)
            header = request.headers.get("Authorization")
            self._credentials.check(header, flavour, self._token_clock.time())
            return await action(request, kind, flavour)
        except ApiError as error:
            return failure(error)

    async def _create(self, request: web.Request, kind: Kind, flavour: Flavour) -> Reply:
        return success(self._core.create(kind, flavour, await _json_object(request)))

    async def _identify_face(self, request: web.Request, kind: Kind, flavour: Flavour) -> Reply:
        return success(self._core.identify_face(await _json_object(request)))

    async def _get(self, request: web.Request, kind: Kind, flavour: Flavour) -> Reply:
        return success(self._core.get(kind, request.match_info["ident"]))

    async def _list(self, request: web.Request, kind: Kind, flavour: Flavour) -> Reply:
        if flavour == "relay" and not self._relay_list_route:
            # The relay docs [S6, S7] document create and get-by-id only: play a relay that
            # has no list (nor ?external_task_id=) query, as an unknown route answers.
            raise ApiError.not_found("no such route")
        external_task_id = request.query.get("external_task_id")
        if external_task_id:
            return success(self._core.by_external(kind, external_task_id))
        page_num = _int_param(request, "pageNum", default=1, high=1000)
        page_size = _int_param(request, "pageSize", default=30, high=500)
        return success(self._core.page(kind, page_num, page_size))

    async def _costs(self, request: web.Request, kind: Kind, flavour: Flavour) -> Reply:
        return success(self._core.packs.costs(request.query, self._core.clock.time()))

    async def _media(self, request: web.Request) -> web.StreamResponse:
        """Stand-in bytes for a generated video, so download code has something to fetch."""
        name = request.match_info["name"]
        stem = name.removesuffix(".mp4")
        video_id = stem.removesuffix(".wm")
        try:
            if stem == name:
                raise ApiError.not_found("not an .mp4")
            self._core.find_video(video_id)
        except ApiError:
            response = web.Response(status=404, text="404 Not Found")
        else:
            body = _MP4_HEADER + f"kling_async emulator video {stem}\n".encode()
            response = web.Response(body=body, content_type="video/mp4")
        self._count(request, "media", response.status)
        return response

    async def _image_media(self, request: web.Request) -> web.StreamResponse:
        """Stand-in bytes for a generated image."""
        name = request.match_info["name"]
        stem = name.removesuffix(".png")
        try:
            if stem == name:
                raise ApiError.not_found("not a .png")
            self._core.find_image(stem.removesuffix(".wm"))
        except ApiError:
            response = web.Response(status=404, text="404 Not Found")
        else:
            body = _PNG_HEADER + f"kling_async emulator image {stem}\n".encode()
            response = web.Response(body=body, content_type="image/png")
        self._count(request, "media", response.status)
        return response

    @web.middleware
    async def _unrouted(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Middleware: JSON envelopes for unknown routes (1203) and wrong methods (1202)."""
        try:
            return await handler(request)
        except web.HTTPMethodNotAllowed:
            reply = failure(ApiError(404, 1202, f"method {request.method} is not allowed here"))
        except web.HTTPNotFound:
            reply = failure(ApiError.not_found("no such route"))
        self._count(request, "other", reply.status)
        return reply.response()

    def _drop(self, request: web.Request, route: Route) -> web.StreamResponse:
        """Close the socket with no answer. The response returned cannot be written, which
        aiohttp treats as a client disconnect: no error is logged."""
        if request.transport is not None:
            request.transport.close()
        self._count(request, route, 0)
        return web.Response()

    def _count(self, request: web.Request, route: str, status: int) -> None:
        self._core.stats.requests[(request.method, route, status)] += 1


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.read())
    except web.HTTPRequestEntityTooLarge:
        raise ApiError.bad_body("request body is too large") from None
    except ValueError:
        raise ApiError.bad_body("request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError.bad_body("request body must be a JSON object")
    return body


def _int_param(request: web.Request, name: str, *, default: int, high: int) -> int:
    text = request.query.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= high:
        raise ApiError.invalid(f"{name} must be an integer in [1, {high}]")
    return value
