"""The one request path: auth header → aiohttp → bytes → envelope → typed errors.

This is the only module that uses aiohttp's client. It sends exactly one HTTP request per call
and never retries (that is :mod:`kling_async.retry`'s job); what it adds is the truth about what
happened, which retries depend on:

* business code first, HTTP status second: ``{"code": 1102}`` with HTTP 429 is an
  :class:`InsufficientBalanceError`, a non-zero code inside HTTP 200 is an error, and an HTML
  page from a gateway is a :class:`ServerError` with an excerpt of the page;
* :class:`TransportError.request_sent` is False only for failures that provably happened before
  the request left (connect phase), the one case where a create may be sent again.
"""

from __future__ import annotations

import email.utils
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import quote

import aiohttp
import attrs
from yarl import URL

from ._version import __version__
from .auth import Credentials
from .clock import Clock
from .clock_skew import name_skew, skew_from_date
from .errors import (
    AuthenticationError,
    ClientClosedError,
    RequestTimeoutError,
    ResponseFormatError,
    TransportError,
    api_error,
    excerpt,
)
from .models import Envelope
from .serde import dumps, loads, structure_envelope

__all__ = ["Timeouts", "Transport", "quote_id"]

log = logging.getLogger("kling_async")


@attrs.frozen
class Timeouts:
    """Time limits for one HTTP request, in seconds (``None`` = no limit).

    ``connect`` covers getting a connection (pool wait, DNS, TCP, TLS), ``read`` the wait for
    each chunk of the answer, ``total`` the whole request.
    """

    connect: float | None = 10.0
    read: float | None = 30.0
    total: float | None = 60.0

    def to_aiohttp(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=self.total, connect=self.connect, sock_read=self.read)


def quote_id(value: str) -> str:
    """An id as one path segment (external ids are caller-chosen and may hold ``/`` or ``?``)."""
    if value.isascii() and value.isalnum():
        return value  # what quote() would return, for the task ids every poll sends
    return quote(value, safe="")


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
    ) -> None:
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
        self.timeouts = timeouts
        self._session = session
        self._owns_session = session is None
        self._max_connections = max_connections
        self._closed = False
        self._aiohttp_timeouts: dict[Timeouts, aiohttp.ClientTimeout] = {}

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

    def _client_timeout(self, timeouts: Timeouts | None) -> aiohttp.ClientTimeout:
        t = timeouts or self.timeouts
        cached = self._aiohttp_timeouts.get(t)
        if cached is None:
            cached = self._aiohttp_timeouts[t] = t.to_aiohttp()
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
        url: URL | str
        if self._base is None or "/." in path:  # yarl would resolve "." and ".." segments
            url = self.base_url + path
        else:
            url = self._base.with_path(self._base_path + path, encoded=True)
        try:
            async with session.request(
                method,
                url,
                data=data,
                params=params,
                headers=headers,
                timeout=self._client_timeout(timeouts),
            ) as response:
                raw = await response.read()
                status = response.status
                retry_after = response.headers.get("Retry-After")
                date = response.headers.get("Date")
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
        except TimeoutError as exc:  # aiohttp's read/total timeouts are TimeoutErrors too
            raise RequestTimeoutError(
                "timed out waiting for the answer", request_sent=True, method=method, path=path
            ) from exc
        except aiohttp.ClientError as exc:
            raise TransportError(
                f"connection failed after sending: {type(exc).__name__}: {exc}",
                request_sent=True,
                method=method,
                path=path,
            ) from exc
        try:
            envelope = self._decode(raw, status, retry_after, authorization)
        except AuthenticationError as error:
            if error.token_stale:  # a clock far off? the server's Date header tells
                name_skew(error, skew_from_date(date, self.clock.time()))
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
                    body_excerpt=excerpt(raw),
                    retry_after=_retry_after(retry_after_header, self.clock.time()),
                )
            request_id = payload.get("request_id") if isinstance(payload, dict) else None
            raise ResponseFormatError(
                "the answer is not a Kling JSON envelope",
                http_status=status,
                request_id=request_id if isinstance(request_id, str) else None,
                body_excerpt=excerpt(raw),
                path="$",
            )
        envelope = structure_envelope(payload, http_status=status)
        if envelope.code != 0 or status >= 400:
            error = api_error(
                code=envelope.code if envelope.code != 0 else None,
                message=envelope.message or f"HTTP {status}",
                request_id=envelope.request_id or None,
                http_status=status,
                body_excerpt=excerpt(raw),
                retry_after=_retry_after(retry_after_header, self.clock.time()),
            )
            if error.code in (1003, 1004):
                self.credentials.token_rejected(authorization, error.code)
            log.debug("API error %r", error)
            raise error
        return envelope

    async def stream(
        self,
        url: str,
        write: Callable[[bytes], Awaitable[object]],
        *,
        timeouts: Timeouts | None = None,
        chunk_size: int = 1 << 16,
    ) -> tuple[int, int | None]:
        """GET ``url`` (a result video: a CDN, not the API) and pass its body to ``write`` chunk
        by chunk. Returns ``(bytes received, Content-Length or None)``.

        No ``Authorization`` header is sent: media URLs are another host, and our credentials
        must never leave for one.
        """
        session = self._session_now()
        try:
            async with session.get(url, timeout=self._client_timeout(timeouts)) as response:
                if response.status >= 400:
                    raise api_error(
                        code=None,
                        message=f"download failed with HTTP {response.status}",
                        request_id=None,
                        http_status=response.status,
                        body_excerpt=excerpt(await response.content.read(400)),
                    )
                received = 0
                async for chunk in response.content.iter_chunked(chunk_size):
                    received += len(chunk)
                    await write(chunk)
                return received, response.content_length
        except TimeoutError as exc:
            raise RequestTimeoutError(
                "timed out downloading", request_sent=True, method="GET", path=url
            ) from exc
        except aiohttp.ClientError as exc:
            raise TransportError(
                f"download failed: {type(exc).__name__}: {exc}",
                request_sent=True,
                method="GET",
                path=url,
            ) from exc
