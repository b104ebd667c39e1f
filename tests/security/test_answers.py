"""API answers from a hostile server: bounded (decompressed) size, no redirects, no
RecursionError, our credentials redacted from whatever is echoed, no path-changing ids."""

from __future__ import annotations

import asyncio
import gc
import logging
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import pytest

import kling_async.transport
from kling_async import (
    AmbiguousSubmitError,
    APIError,
    AuthenticationError,
    KlingClient,
    RequestValidationError,
    ResponseFormatError,
    ServerError,
    TransportError,
)
from kling_async.serde.converter import _stdlib_loads

from .conftest import API_KEY
from .hostile import (
    HostileServer,
    answer,
    deep_json,
    echo_authorization,
    echo_headers_html,
    gzip_bomb,
    huge,
    redirect,
    task_answer,
)

ClientFor = Callable[..., KlingClient]
GET_1 = "/v1/videos/video-extend/1"
MiB = 1 << 20


async def peak_during(work: Any) -> tuple[Any, int]:
    """Run ``work`` (an awaitable factory) and return (its outcome, the traced peak bytes)."""
    gc.collect()
    tracemalloc.start()
    try:
        try:
            result: Any = await work()
        except Exception as exc:
            result = exc
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("declared", [True, False])
async def test_a_huge_answer_is_refused_past_the_cap_without_being_held(
    server: HostileServer, client_for: ClientFor, declared: bool
) -> None:
    server.on(GET_1, huge(48 * MiB, declared=declared))
    kling = client_for(server.url)
    error, peak = await peak_during(lambda: kling.get_task("1"))
    assert isinstance(error, ResponseFormatError)
    assert "max_answer_bytes" in str(error)
    assert peak < 16 * MiB, f"client held {peak / MiB:.1f} MiB"


async def test_a_gzip_bomb_is_stopped_after_the_cap_of_decompressed_bytes(
    server: HostileServer, client_for: ClientFor
) -> None:
    server.on(GET_1, gzip_bomb(256 * MiB))
    kling = client_for(server.url)
    error, peak = await peak_during(lambda: kling.get_task("1"))
    assert isinstance(error, ResponseFormatError)
    assert peak < 24 * MiB, f"client held {peak / MiB:.1f} MiB"


async def test_the_answer_cap_is_configurable(server: HostileServer, client_for: ClientFor) -> None:
    server.on(GET_1, answer(task_answer("1", task_status_msg="x" * 5000)))
    assert (await client_for(server.url).get_task("1")).task_id == "1"
    with pytest.raises(ResponseFormatError):
        await client_for(server.url, max_answer_bytes=4096).get_task("1")
    with pytest.raises(ValueError, match="max_answer_bytes"):
        client_for(server.url, max_answer_bytes=0)


async def test_a_redirect_on_a_read_is_an_error_and_not_followed(
    make_server: Any, client_for: ClientFor
) -> None:
    api, elsewhere = await make_server(), await make_server()
    elsewhere.on(GET_1, answer(task_answer("1", task_status="succeed")))
    api.on(GET_1, redirect(elsewhere.url + GET_1, 302))
    with pytest.raises(APIError) as caught:
        await client_for(api.url).get_task("1")
    assert caught.value.http_status == 302
    assert not caught.value.retryable
    assert elsewhere.seen == []


async def test_a_redirect_on_a_create_is_refused_not_ambiguous_and_the_body_stays(
    make_server: Any, client_for: ClientFor
) -> None:
    api, elsewhere = await make_server(), await make_server()
    elsewhere.on("/v1/videos/video-extend", answer(task_answer("stolen")))
    api.on("/v1/videos/video-extend", redirect(elsewhere.url + "/v1/videos/video-extend", 307))
    kling = client_for(api.url)
    with pytest.raises(APIError) as caught:
        await kling.extend_video("v1", prompt="private prompt")
    assert not isinstance(caught.value, AmbiguousSubmitError)
    assert caught.value.http_status == 307
    assert elsewhere.url in caught.value.body_excerpt
    assert elsewhere.seen == []
    assert [s.method for s in api.seen] == ["POST"]  # no lookup: it was not processed


async def test_deeply_nested_json_without_orjson_is_a_format_error(
    server: HostileServer, client_for: ClientFor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kling_async.transport, "loads", _stdlib_loads)
    server.on(GET_1, answer(deep_json(100_000)))
    with pytest.raises(ResponseFormatError):
        await client_for(server.url).get_task("1")


@pytest.mark.parametrize("depth", [1000, 100_000])
async def test_deeply_nested_json_in_a_field_is_a_format_error(
    server: HostileServer, client_for: ClientFor, depth: int
) -> None:
    body = task_answer("1")
    raw = (
        b'{"code":0,"request_id":"r","data":{"task_id":"1","task_status":"succeed",'
        b'"task_result":{"videos":' + b"[" * depth + b"]" * depth + b"}}}"
    )
    assert body  # the shape above is task_answer's, with a nested video list
    server.on(GET_1, answer(raw))
    with pytest.raises(ResponseFormatError):
        await client_for(server.url).get_task("1")


def reachable(error: BaseException) -> Iterator[object]:
    """Every object reachable from ``error`` by causes, contexts and attributes (a few levels)."""
    seen: set[int] = set()
    todo: list[tuple[object, int]] = [(error, 0)]
    while todo:
        obj, depth = todo.pop()
        if id(obj) in seen or depth > 4:
            continue
        seen.add(id(obj))
        yield obj
        children: list[object] = []
        if isinstance(obj, BaseException):
            children += [obj.__cause__, obj.__context__, *obj.args]
        children += list(getattr(obj, "__dict__", {}).values())
        todo += [(c, depth + 1) for c in children if c is not None]


def assert_no_secret(error: BaseException, secrets: list[str], log_text: str) -> None:
    for obj in reachable(error):
        assert not isinstance(obj, aiohttp.RequestInfo), "request_info reachable from the error"
        for text in (str(obj), repr(obj)):
            for secret in secrets:
                assert secret not in text
    for secret in secrets:
        assert secret not in log_text


async def test_an_echoed_bearer_key_is_redacted_from_errors_and_logs(
    server: HostileServer, client_for: ClientFor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="kling_async")
    server.on(GET_1, echo_authorization(401))
    with pytest.raises(AuthenticationError) as caught:
        await client_for(server.url).get_task("1")
    assert "Bearer ***" in caught.value.message
    assert_no_secret(caught.value, [API_KEY], caplog.text)


async def test_an_html_page_echoing_headers_and_keys_is_redacted(
    server: HostileServer, client_for: ClientFor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="kling_async")
    access, secret = "ak-test-access-0123", "sk-test-secret-0123456789abcdef"
    server.on(GET_1, echo_headers_html(502, extra=f"<p>{access} {secret}</p>"))
    kling = client_for(server.url, access_key=access, secret_key=secret)
    with pytest.raises(ServerError) as caught:
        await kling.get_task("1")
    token = kling._transport.credentials.authorization().removeprefix("Bearer ")
    assert "Bad gateway" in caught.value.body_excerpt
    assert_no_secret(caught.value, [access, secret, token], caplog.text)


async def test_a_garbled_answer_keeps_no_request_info_in_the_error(
    client_for: ClientFor,
) -> None:
    """aiohttp's error for an unparsable status line carries request_info (with our
    Authorization header); the TransportError raised for it must not."""

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nBad Header Without Colon\r\n\r\n")
        await writer.drain()
        writer.close()

    tcp = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = tcp.sockets[0].getsockname()[1]
    try:
        with pytest.raises(TransportError) as caught:
            await client_for(f"http://127.0.0.1:{port}").get_task("1")
        assert_no_secret(caught.value, [API_KEY], "")
    finally:
        tcp.close()
        await tcp.wait_closed()


@pytest.mark.parametrize("task_id", [".", "..", " .. "])
async def test_dot_ids_are_refused_before_any_request(
    server: HostileServer, client_for: ClientFor, task_id: str
) -> None:
    server.on("/v1/videos", answer(task_answer("list-route")))
    with pytest.raises(RequestValidationError):
        await client_for(server.url).get_task(task_id)
    assert server.seen == []


async def test_ids_with_slashes_stay_one_path_segment(
    server: HostileServer, client_for: ClientFor
) -> None:
    server.on("/v1/videos/video-extend/a/../b", answer(task_answer("b")))
    assert (await client_for(server.url).get_task("a/../b")).task_id == "b"
    assert server.seen[0].raw_path == "/v1/videos/video-extend/a%2F..%2Fb"


async def test_a_plain_http_remote_base_url_warns_once(
    client_for: ClientFor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="kling_async")
    client_for("http://api.example.invalid/warn-once")
    client_for("http://api.example.invalid/warn-once")
    client_for("https://api.example.invalid/warn-once")
    client_for("http://127.0.0.1:9/warn-once")
    client_for("http://localhost:9/warn-once")
    warnings = [r for r in caplog.records if "plain http" in r.getMessage()]
    assert len(warnings) == 1
    assert "api.example.invalid" in warnings[0].getMessage()
