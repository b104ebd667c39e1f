"""The one request path: auth header → aiohttp → bytes → envelope → typed errors.

This is the only module that uses aiohttp's client. It sends exactly one HTTP request per call
and never retries (that is :mod:`kling_async.retry`'s job); what it adds is the truth about what
happened, which retries depend on:

* business code first, HTTP status second: ``{"code": 1102}`` with HTTP 429 is an
  :class:`InsufficientBalanceError`, a non-zero code inside HTTP 200 is an error, and an HTML
  page from a gateway is a :class:`ServerError` with an excerpt of the page;
* :class:`TransportError.request_sent` is False only for failures that provably happened before
  the request left (connect phase), the one case where a create may be sent again;
* nothing the server sends is trusted: answers are read up to ``max_answer_bytes``
  (decompressed), redirects are never followed (a 3xx is an error), our own credentials are
  redacted from every server string kept in an error, and no error we raise keeps aiohttp's
  ``request_info`` (it holds the ``Authorization`` header) reachable.

One module, though past 400 lines: being the only user of aiohttp's client is the point — the
API path and the media path (redirects checked one by one, sizes capped) share its session
handling, time-outs and error mapping, and a second module touching aiohttp would be a second
place to get those wrong.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NoReturn
from urllib.parse import quote

import aiohttp
import attrs
from yarl import URL

from ._version import __version__
from .auth import Credentials
from .clock import Clock, io_in_flight, token_clock
from .clock_skew import name_skew, skew_from_date
from .errors import (
    AuthenticationError,
    ClientClosedError,
    DownloadError,
    KlingError,
    RequestTimeoutError,
    RequestValidationError,
    ResponseFormatError,
    TransportError,
    api_error,
    excerpt,
    redact,
)
from .media import AddressRefused, MediaPolicy, PolicyResolver
from .models import Envelope
from .serde import dumps, loads, structure_envelope

__all__ = [
    "DEFAULT_MAX_ANSWER",
    "DOWNLOAD_TIMEOUTS",
    "READ_TIMEOUTS",
    "Timeouts",
    "Transport",
    "quote_id",
]

log = logging.getLogger("kling_async")

DEFAULT_MAX_ANSWER = 4 << 20  # an envelope is kilobytes; a 500-task list page well under 1 MiB


@attrs.frozen
class Timeouts:
    """Time limits for one HTTP request, in seconds (``None`` = no limit).

    ``connect`` covers getting a connection (pool wait, DNS, TCP, TLS), ``read`` the wait for
    each chunk of the answer, ``total`` the whole request.

    A :class:`~kling_async.KlingClient`'s defaults: reads (get, list, polls)
    ``Timeouts(connect=10, read=None, total=30)``; creates ``Timeouts(connect=10, read=60,
    total=90)``; downloads ``Timeouts(connect=10, read=30, total=None)``.
    """

    connect: float | None = 10.0
    read: float | None = 30.0
    total: float | None = 60.0

    def to_aiohttp(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=self.total, connect=self.connect, sock_read=self.read)


# Reads (get, list, every poll) by default: an answer is kilobytes (a 500-task page well
# under 1 MiB), so one deadline for the whole request bounds a stalled server as tightly as a
# per-chunk limit would. A per-chunk ``read`` makes aiohttp re-arm a timer on every chunk, 7% of
# a poll's CPU (benchmarks/README.md, issue #16); pass ``read=`` to have it anyway.
READ_TIMEOUTS = Timeouts(connect=10.0, read=None, total=30.0)

# A video on a slow link may take longer than any total: downloads bound the connect and each
# read instead.
DOWNLOAD_TIMEOUTS = Timeouts(connect=10.0, read=30.0, total=None)


def quote_id(value: str) -> str:
    """An id as one path segment (external ids are caller-chosen and may hold ``/`` or ``?``).

    ``.`` and ``..`` are refused: percent-quoting leaves them as they are, and URL resolution
    (yarl's, a proxy's, the server's) would turn ``/videos/..`` into another path.
    """
    if value.isascii() and value.isalnum():
        return value  # what quote() would return, for the task ids every poll sends
    if value.strip() in (".", ".."):
        raise RequestValidationError("task_id", f"{value!r} is not a task id")
    return quote(value, safe="")


class _AnswerTooLarge(Exception):
    pass


async def _read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body, decompressed, read chunk by chunk; :class:`_AnswerTooLarge` past ``limit``
    bytes. Counting what the stream yields counts decompressed bytes, so a small gzip bomb is
    stopped after ``limit`` bytes of output, not after it has filled memory."""
    declared = response.content_length
    if declared is not None and "Content-Encoding" not in response.headers:
        if declared > limit:
            raise _AnswerTooLarge
        # The parser stops at the declared length: one read is bounded, and cheaper per poll.
        return await response.read()
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > limit:
            raise _AnswerTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _raise_detached(error: KlingError, cause: BaseException) -> NoReturn:
    """Raise ``error`` caused by an aiohttp exception, without keeping a ``request_info``
    (whose headers include ``Authorization``) reachable from it. Called outside the
    ``except`` block, so that the cause is not kept as ``__context__`` either."""
    if getattr(cause, "request_info", None) is not None:
        raise error
    raise error from cause


def _retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


class Transport:
    """Sends requests to one base URL with one set of credentials over one aiohttp session."""

    def __init__(
        self,
        *,
        base_url: str,
        credentials: Credentials,
        clock: Clock,
        timeouts: Timeouts,
        session: aiohttp.ClientSession | None = None,
        max_connections: int = 100,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER,
    ) -> None:
        if max_answer_bytes < 1:
            raise ValueError("max_answer_bytes must be >= 1")
        self.max_answer_bytes = max_answer_bytes
        self.base_url = base_url.rstrip("/")
        # Parsed once. Every request URL is this plus an already quoted path, and parsing each
        # new URL string (every poll's has its own task id, so yarl's cache misses) cost about
        # 3% of a poll's CPU. A base URL with a query or fragment keeps string concatenation.
        base = URL(self.base_url)
        plain = base.absolute and not base.raw_query_string and not base.raw_fragment
        self._base: URL | None = base if plain else None
        self._base_path = base.raw_path.rstrip("/")
        self.credentials = credentials
        self.clock = clock
        self._session = session
        self._owns_session = session is None
        self._max_connections = max_connections
        self._closed = False
        self._aiohttp_timeouts: dict[Timeouts, aiohttp.ClientTimeout] = {}
        # The limits of a request that names none (every poll's), found without a hash.
        self._default_timeout = timeouts.to_aiohttp()
        # Downloads get sessions of their own, keyed by allow_private: their resolver is the
        # media policy's address check, and they never carry the API session's settings.
        self._media_sessions: dict[bool, aiohttp.ClientSession] = {}

    @property
    def closed(self) -> bool:
        return self._closed

    def _session_now(self) -> aiohttp.ClientSession:
        if self._closed:
            raise ClientClosedError("this KlingClient is closed; create a new one")
        if self._session is None:
            # Created lazily so that it binds to the running loop, not the one (if any) that
            # existed when the client object was built.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._max_connections, limit_per_host=self._max_connections
                ),
                timeout=aiohttp.ClientTimeout(total=None),
                headers={"User-Agent": f"kling-async/{__version__}"},
            )
        return self._session

    async def aclose(self) -> None:
        self._closed = True
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None
        media, self._media_sessions = self._media_sessions, {}
        for media_session in media.values():
            await media_session.close()

    def _secrets(self, authorization: str) -> tuple[str, ...]:
        return (authorization.removeprefix("Bearer "), *self.credentials.secrets())

    def _client_timeout(self, timeouts: Timeouts | None) -> aiohttp.ClientTimeout:
        if timeouts is None:
            return self._default_timeout
        cached = self._aiohttp_timeouts.get(timeouts)
        if cached is None:
            cached = self._aiohttp_timeouts[timeouts] = timeouts.to_aiohttp()
        return cached

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str | int] | None = None,
        timeouts: Timeouts | None = None,
    ) -> Envelope:
        """Send one request and return the envelope of a ``code == 0`` answer, or raise."""
        session = self._session_now()
        authorization = self.credentials.authorization()
        headers = {"Authorization": authorization}
        data = None
        if body is not None:
            data = dumps(body)
            headers["Content-Type"] = "application/json"
        failure: TransportError | None = None
        url: URL | str
        if self._base is None or "/." in path:  # yarl would resolve "." and ".." segments
            url = self.base_url + path
        else:
            url = self._base.with_path(self._base_path + path, encoded=True)
        try:
            async with (
                io_in_flight(self.clock),
                session.request(
                    method,
                    url,
                    data=data,
                    params=params,
                    headers=headers,
                    timeout=self._client_timeout(timeouts),
                    allow_redirects=False,
                ) as response,
            ):
                status = response.status
                retry_after = response.headers.get("Retry-After")
                date = response.headers.get("Date")
                if 300 <= status < 400:
                    location = response.headers.get("Location", "")
                    self._refuse_redirect(status, location, authorization)
                raw = await _read_capped(response, self.max_answer_bytes)
        except _AnswerTooLarge:
            raise ResponseFormatError(
                f"the answer is larger than max_answer_bytes ({self.max_answer_bytes} bytes)",
                http_status=status,
                path="$",
            ) from None
        except aiohttp.ConnectionTimeoutError as exc:
            raise RequestTimeoutError(
                f"timed out connecting: {exc}", request_sent=False, method=method, path=path
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            raise TransportError(
                f"could not connect: {exc.os_error or exc}",
                request_sent=False,
                method=method,
                path=path,
            ) from exc
        # aiohttp's read/total timeouts are asyncio.TimeoutErrors: the builtin TimeoutError
        # only from Python 3.11 on, so the builtin would let them through as TransportErrors
        # on 3.10.
        except asyncio.TimeoutError as exc:
            raise RequestTimeoutError(
                "timed out waiting for the answer", request_sent=True, method=method, path=path
            ) from exc
        except aiohttp.ClientError as exc:
            text = redact(str(exc), self._secrets(authorization))
            failure = TransportError(
                f"connection failed after sending: {type(exc).__name__}: {text}",
                request_sent=True,
                method=method,
                path=path,
            )
            detach_from = exc
        if failure is not None:
            _raise_detached(failure, detach_from)
        try:
            envelope = self._decode(raw, status, retry_after, authorization)
        except AuthenticationError as error:
            if error.token_stale:  # a clock far off? the server's Date header tells
                name_skew(error, skew_from_date(date, token_clock(self.clock).time()))
            raise
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s %s -> HTTP %s code=%s request_id=%s",
                method,
                path,
                status,
                envelope.code,
                envelope.request_id,
            )
        return envelope

    def _refuse_redirect(self, status: int, location: str, authorization: str) -> NoReturn:
        """A 3xx on an API call is an error, never followed: following would re-send the body
        (and, to the same origin, the credentials) wherever the server says, and take that
        answer for ours. The request was not processed where we sent it, so a create that gets
        one is refused, not ambiguous."""
        where = excerpt(location, secrets=self._secrets(authorization))
        raise api_error(
            code=None,
            message=f"HTTP {status} redirect refused (API calls do not follow redirects)",
            request_id=None,
            http_status=status,
            body_excerpt=f"Location: {where}" if where else "",
        )

    def _decode(
        self, raw: bytes, status: int, retry_after_header: str | None, authorization: str
    ) -> Envelope:
        try:
            payload = loads(raw)
        except ValueError:
            payload = None
        if not isinstance(payload, dict) or "code" not in payload:
            # No envelope: an HTML gateway page, an empty body, truncated JSON.
            if status >= 400:
                raise api_error(
                    code=None,
                    message=f"HTTP {status} without a Kling error body",
                    request_id=None,
                    http_status=status,
                    body_excerpt=excerpt(raw, secrets=self._secrets(authorization)),
                    retry_after=_retry_after(retry_after_header, self.clock.time()),
                )
            request_id = payload.get("request_id") if isinstance(payload, dict) else None
            raise ResponseFormatError(
                "the answer is not a Kling JSON envelope",
                http_status=status,
                request_id=request_id if isinstance(request_id, str) else None,
                body_excerpt=excerpt(raw, secrets=self._secrets(authorization)),
                path="$",
            )
        envelope = structure_envelope(payload, http_status=status)
        if envelope.code != 0 or status >= 400:
            error = api_error(
                code=envelope.code if envelope.code != 0 else None,
                message=redact(envelope.message, self._secrets(authorization)) or f"HTTP {status}",
                request_id=envelope.request_id or None,
                http_status=status,
                body_excerpt=excerpt(raw, secrets=self._secrets(authorization)),
                retry_after=_retry_after(retry_after_header, self.clock.time()),
            )
            if error.code in (1003, 1004):
                self.credentials.token_rejected(authorization, error.code)
            log.debug("API error %r", error)
            raise error
        return envelope

    def _media_session(self, policy: MediaPolicy) -> aiohttp.ClientSession:
        self._session_now()  # refuses a closed transport
        session = self._media_sessions.get(policy.allow_private)
        if session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                resolver=None if policy.allow_private else PolicyResolver(),
            )
            session = self._media_sessions[policy.allow_private] = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None),
                headers={"User-Agent": f"kling-async/{__version__}"},
                auto_decompress=False,  # media bytes are stored as sent, never inflated
            )
        return session

    async def stream(
        self,
        url: str,
        write: Callable[[bytes], Awaitable[object]],
        *,
        policy: MediaPolicy,
        max_bytes: int | None = None,
        timeouts: Timeouts = DOWNLOAD_TIMEOUTS,
        chunk_size: int = 1 << 16,
    ) -> tuple[int, int | None]:
        """GET ``url`` (a result video: a CDN, not the API) and pass its body to ``write`` chunk
        by chunk. Returns ``(bytes received, Content-Length or None)``.

        ``policy`` decides which URLs may be fetched; redirects are followed here, one by one,
        each checked by it first. Past ``max_bytes`` the download fails with a
        :class:`ResponseFormatError`. No ``Authorization`` header is sent: media URLs are
        another host, and our credentials must never leave for one.
        """
        session = self._media_session(policy)
        target = URL(url)
        try:
            for _ in range(policy.max_redirects + 1):
                policy.check(target)
                async with (
                    io_in_flight(self.clock),
                    session.get(
                        target, timeout=self._client_timeout(timeouts), allow_redirects=False
                    ) as response,
                ):
                    if 300 <= response.status < 400 and "Location" in response.headers:
                        target = target.join(URL(response.headers["Location"]))
                        continue
                    return await _stream_body(response, write, max_bytes, chunk_size)
            raise DownloadError(f"more than {policy.max_redirects} redirects")
        except asyncio.TimeoutError as exc:  # not the builtin before 3.11, as above
            raise RequestTimeoutError(
                "timed out downloading", request_sent=True, method="GET", path=_no_query(url)
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, AddressRefused):
                raise DownloadError(f"refused media URL: {exc.os_error}") from None
            raise TransportError(
                f"download failed: could not connect: {exc.os_error or exc}",
                request_sent=False,
                method="GET",
                path=_no_query(url),
            ) from exc
        except aiohttp.ClientError as exc:
            failure = TransportError(
                f"download failed: {type(exc).__name__}: {exc}",
                request_sent=True,
                method="GET",
                path=_no_query(url),
            )
            detach_from = exc
        _raise_detached(failure, detach_from)


def _no_query(url: str) -> str:
    """A media URL for error messages: signed CDN URLs carry their token in the query."""
    return url.split("?", 1)[0]


async def _stream_body(
    response: aiohttp.ClientResponse,
    write: Callable[[bytes], Awaitable[object]],
    max_bytes: int | None,
    chunk_size: int,
) -> tuple[int, int | None]:
    if not 200 <= response.status < 300:
        raise api_error(
            code=None,
            message=f"download failed with HTTP {response.status}",
            request_id=None,
            http_status=response.status,
            body_excerpt=excerpt(await response.content.read(400)),
        )
    expected = response.content_length
    if max_bytes is not None and expected is not None and expected > max_bytes:
        raise ResponseFormatError(f"the video is {expected} bytes, over max_bytes ({max_bytes})")
    received = 0
    async for chunk in response.content.iter_chunked(chunk_size):
        received += len(chunk)
        if max_bytes is not None and received > max_bytes:
            raise ResponseFormatError(f"the video is over max_bytes ({max_bytes})")
        await write(chunk)
    return received, expected
