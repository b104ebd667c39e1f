"""A hostile HTTP server on loopback: it answers every request the way a test tells it to.

Routes are set per path (``server.on("/v1/videos/video-extend/1", handler)``); the handlers
below are the attacks a client must survive: huge answers, gzip bombs, redirects elsewhere,
echoed credentials, deep JSON, slow bodies. Every request is recorded (method, path, headers)
before it is answered. Large bodies are generated chunk by chunk, so the server's own memory
stays small and a ``tracemalloc`` peak measures the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CHUNK = 1 << 16


@attrs.frozen
class Seen:
    method: str
    path: str
    raw_path: str
    headers: dict[str, str]


class HostileServer:
    """``async with HostileServer() as server``: ``server.url`` is ``http://127.0.0.1:<port>``."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.seen: list[Seen] = []
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        # A stalling handler is the point of many tests: do not wait for it at the end.
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.2)
        self.url = ""

    async def __aenter__(self) -> HostileServer:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._runner.cleanup()

    def on(self, path: str, handler: Handler) -> None:
        self.routes[path] = handler

    def paths(self) -> list[str]:
        return [seen.path for seen in self.seen]

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        seen = Seen(request.method, request.path, request.raw_path, dict(request.headers))
        self.seen.append(seen)
        handler = self.routes.get(request.path)
        if handler is None:
            return web.json_response({"code": 1203, "message": "no such route"}, status=404)
        return await handler(request)


def answer(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Handler:
    """A fixed JSON (or, given bytes or str, raw) answer."""

    async def handle(request: web.Request) -> web.StreamResponse:
        raw = body if isinstance(body, (bytes, str)) else json.dumps(body)
        return web.Response(status=status, body=raw, headers=headers)

    return handle


def task_answer(task_id: str = "1", **fields: Any) -> dict[str, Any]:
    task = {"task_id": task_id, "task_status": "submitted", "created_at": 1, "updated_at": 1}
    return {"code": 0, "message": "SUCCEED", "request_id": "r", "data": {**task, **fields}}


async def _stream(
    request: web.Request, chunks: Any, headers: dict[str, str] | None = None
) -> web.StreamResponse:
    response = web.StreamResponse(headers=headers)
    await response.prepare(request)
    with contextlib.suppress(ConnectionError):  # the client hung up: that is the point
        for chunk in chunks:
            await response.write(chunk)
    return response


def _chunked(body: bytes) -> list[bytes]:
    return [body[i : i + CHUNK] for i in range(0, len(body), CHUNK)]


def huge(size: int, *, declared: bool = True) -> Handler:
    """A JSON answer of ``size`` bytes (a valid envelope start, then padding), streamed."""

    async def handle(request: web.Request) -> web.StreamResponse:
        head = b'{"code":0,"message":"'
        tail = b'","data":{}}'
        pad = size - len(head) - len(tail)
        filler = b"x" * CHUNK

        def chunks() -> Any:
            yield head
            left = pad
            while left > 0:
                yield filler[: min(CHUNK, left)]
                left -= CHUNK
            yield tail

        headers = {"Content-Length": str(size)} if declared else None
        return await _stream(request, chunks(), headers)

    return handle


def gzip_bomb(inflated: int, content_type: str = "application/json") -> Handler:
    """A small gzip body that inflates to ``inflated`` bytes of spaces (compressed once, in
    chunks, so neither side ever holds the inflated size)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [compressor.compress(b'{"code":0,"data":{},"pad":"')]
    block = b" " * (1 << 20)
    for _ in range(inflated >> 20):
        parts.append(compressor.compress(block))
    parts.append(compressor.compress(b'"}') + compressor.flush())
    body = b"".join(parts)

    async def handle(request: web.Request) -> web.StreamResponse:
        headers = {"Content-Encoding": "gzip", "Content-Type": content_type}
        return await _stream(request, _chunked(body), headers)

    return handle


def redirect(location: str, status: int = 302) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, headers={"Location": location})

    return handle


def echo_authorization(status: int = 401) -> Handler:
    """A Kling-shaped error whose message echoes the request's ``Authorization`` header."""

    async def handle(request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        body = {"code": 1000, "message": f"invalid token: {auth}", "request_id": "r"}
        return web.json_response(body, status=status)

    return handle


def echo_headers_html(status: int = 502, extra: str = "") -> Handler:
    """A gateway's HTML error page listing the request headers (and ``extra``)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        rows = "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in request.headers.items())
        html = f"<html><body><h1>Bad gateway</h1>{extra}<table>{rows}</table></body></html>"
        return web.Response(status=status, text=html, content_type="text/html")

    return handle


def deep_json(depth: int) -> bytes:
    """An envelope whose ``data`` nests ``depth`` lists deep."""
    return b'{"code":0,"message":"","request_id":"r","data":' + b"[" * depth + b"]" * depth + b"}"


def media(body: bytes, *, declared: bool = True, headers: dict[str, str] | None = None) -> Handler:
    """A media file, in 64 KiB chunks."""

    async def handle(request: web.Request) -> web.StreamResponse:
        all_headers = {"Content-Type": "video/mp4", **(headers or {})}
        if declared:
            all_headers["Content-Length"] = str(len(body))
        return await _stream(request, _chunked(body), all_headers)

    return handle


def slow_media(chunks: int, every: float, chunk: bytes = b"\0" * 1024) -> Handler:
    """A media file sent as ``chunks`` chunks, ``every`` seconds apart (a slow link)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(chunks * len(chunk))})
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            for _ in range(chunks):
                await response.write(chunk)
                await asyncio.sleep(every)
        return response

    return handle
