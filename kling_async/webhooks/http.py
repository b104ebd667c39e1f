"""The HTTP side of callbacks: an aiohttp.web handler and a pure-ASGI app.

Both read the raw body (the signature covers the exact bytes), pass it to a
:class:`~kling_async.webhooks.CallbackReceiver`, and answer with a small JSON body: 200 accepted
or repeated, 400 not a callback, 401 bad signature, 413 too large, 500 ``on_event`` failed.
Re-exported by :mod:`kling_async.webhooks`; import from there.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any, Protocol

from aiohttp import web

from ..errors import ResponseFormatError
from .signing import SignatureError

__all__ = ["MAX_BODY", "CallbackApp", "Receiver", "aiohttp_handler", "asgi_app"]

log = logging.getLogger("kling_async")

MAX_BODY = 1 << 20  # a callback is a task object: a few kilobytes


class Receiver(Protocol):
    """What an adapter needs from a receiver (:class:`kling_async.webhooks.CallbackReceiver`).

    ``receive`` takes the request's headers as ``(name, value)`` pairs, the raw body and the
    query string of the URL posted to (``extend_many(callback_receiver=...)`` reads its token
    there); it raises :class:`SignatureError` (answered 401),
    :class:`~kling_async.ResponseFormatError` (400) or anything else (500). What it returns is
    not used.
    """

    async def receive(
        self, headers: Iterable[tuple[str, str]], body: bytes, *, query: str
    ) -> object: ...


_OK = b'{"ok":true}'
_ANSWERS = {
    400: b'{"ok":false,"error":"not a Kling callback body"}',
    401: b'{"ok":false,"error":"missing or invalid webhook signature"}',
    405: b'{"ok":false,"error":"method not allowed"}',
    413: b'{"ok":false,"error":"body too large"}',
    500: b'{"ok":false,"error":"the callback could not be handled"}',
}


async def _answer(
    receiver: Receiver, headers: Iterable[tuple[str, str]], body: bytes, query: str
) -> tuple[int, bytes]:
    """The HTTP status and JSON body for one delivery."""
    try:
        await receiver.receive(headers, body, query=query)
    except SignatureError as exc:
        log.warning("kling callback refused: %s", exc)
        return 401, _ANSWERS[401]
    except ResponseFormatError as exc:
        log.warning("kling callback refused: %s", exc)
        return 400, _ANSWERS[400]
    except Exception:
        log.exception("kling callback: on_event failed")
        return 500, _ANSWERS[500]
    return 200, _OK


def aiohttp_handler(
    receiver: Receiver,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """An aiohttp.web request handler for ``receiver``: ``router.add_post(path, handler)``.

    Bodies over the application's ``client_max_size`` (1 MiB by default) get aiohttp's 413.
    """

    async def handle_kling_callback(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        status, answer = await _answer(
            receiver, request.headers.items(), body, request.query_string
        )
        return web.Response(status=status, body=answer, content_type="application/json")

    return handle_kling_callback


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class _Disconnected(Exception):
    pass


class CallbackApp:
    """A minimal ASGI 3 application serving one receiver on every path.

    Pure ASGI (no framework needed): mount it in FastAPI/Starlette, or serve it alone with any
    ASGI server. Only ``POST`` is accepted; the body is read raw, up to ``max_body`` bytes.
    """

    def __init__(self, receiver: Receiver, *, max_body: int = MAX_BODY) -> None:
        self.receiver = receiver
        self.max_body = max_body

    def __repr__(self) -> str:
        return f"CallbackApp({self.receiver!r})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        if scope.get("method") != "POST":
            await self._respond(send, 405, _ANSWERS[405], [(b"allow", b"POST")])
            return
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        try:
            body = await self._body(receive, headers)
        except _Disconnected:
            return
        if body is None:
            await self._respond(send, 413, _ANSWERS[413])
            return
        query = scope.get("query_string", b"").decode("latin-1")
        status, answer = await _answer(self.receiver, headers, body, query)
        await self._respond(send, status, answer)

    async def _body(self, receive: Receive, headers: list[tuple[str, str]]) -> bytes | None:
        """The whole request body, or ``None`` if it is larger than ``max_body``."""
        declared = [v.strip() for k, v in headers if k.lower() == "content-length"]
        if declared and declared[0].isdigit() and int(declared[0]) > self.max_body:
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    @staticmethod
    async def _respond(
        send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *(extra or []),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    async def _lifespan(receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


def asgi_app(receiver: Receiver, *, max_body: int = MAX_BODY) -> CallbackApp:
    """An ASGI app for ``receiver``: ``fastapi_app.mount("/kling-callback", asgi_app(r))``."""
    return CallbackApp(receiver, max_body=max_body)
