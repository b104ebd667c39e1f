"""Every exception kling_async raises, in one place.

::

    KlingError
    ├── APIError                      the server answered with a business code (or an HTTP error)
    │   ├── AuthenticationError       1000–1004, HTTP 401
    │   ├── AccountError              1100–1103
    │   │   ├── InsufficientBalanceError   1102 (arrives as HTTP 429: never retried)
    │   │   │   └── PreflightBalanceError  a batch's estimate exceeds the packs: nothing sent
    │   │   └── PermissionDeniedError      1103
    │   ├── InvalidRequestError       1200–1203
    │   │   ├── NotFoundError              1203, or HTTP 404 with no code
    │   │   └── ExternalIdConflictError    the external_task_id names another request's task
    │   ├── PolicyError               1300, 1301, 1304
    │   ├── RateLimitError            1302 (retryable)
    │   ├── ConcurrencyLimitError     1303 (retryable: the create was refused, no task exists)
    │   │   └── SlotTimeoutError           no slot came free within ``slot_timeout``: nothing sent
    │   └── ServerError               5000–5002, or any HTTP 5xx without a code (retryable)
    ├── TransportError                no usable answer: connection failed, reset, timed out
    │   └── RequestTimeoutError
    ├── DownloadError                 a video was refused (media policy) or could not be written
    ├── ResponseFormatError           an answer that is not the envelope we expect
    ├── AmbiguousSubmitError          a create may or may not exist; carries what is needed to look
    ├── TaskFailedError               the task ended ``failed`` (carries the task)
    ├── TaskTimeoutError              we stopped waiting; the task goes on running on the server
    ├── RequestValidationError        bad input, raised before any network I/O (also a ValueError)
    ├── ConfigurationError            bad client set-up, e.g. no credentials (also a ValueError)
    ├── DatabaseError                 PostgreSQL unreachable, refused us, or has a newer schema
    │   └── DatabaseUnavailableError   down for longer than the outage bound: the worker stopped
    └── ClientClosedError             the client was used after ``aclose()`` (also a RuntimeError)

``retryable`` on an :class:`APIError` says whether sending the same request again may succeed.
No message built here ever includes a credential, and every server-provided string goes
through :func:`redact` before it is stored in one (a server may echo our own key back).

One module, though past 400 lines: the tree is read as a whole, drawn once above, as httpx
does with its exceptions module.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .models import Task

__all__ = [
    "APIError",
    "AccountError",
    "AmbiguousSubmitError",
    "AuthenticationError",
    "ClientClosedError",
    "ConfigurationError",
    "DatabaseError",
    "DatabaseUnavailableError",
    "ConcurrencyLimitError",
    "DownloadError",
    "ExternalIdConflictError",
    "InsufficientBalanceError",
    "InvalidRequestError",
    "KlingError",
    "NotFoundError",
    "PermissionDeniedError",
    "PolicyError",
    "PreflightBalanceError",
    "RateLimitError",
    "RequestTimeoutError",
    "RequestValidationError",
    "ResponseFormatError",
    "ServerError",
    "SlotTimeoutError",
    "TaskFailedError",
    "TaskTimeoutError",
    "TransportError",
    "api_error",
    "redact",
]

_EXCERPT = 200


# "Bearer <anything>" and JWT-shaped strings, whoever's they are: an echo of a request header.
_TOKENS = re.compile(
    r"(?i:bearer)\s+[^\s\"',;<>]+|eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"
)
_MIN_SECRET = 4  # shorter "secrets" would blank out ordinary words


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with each of ``secrets`` and any bearer token or JWT replaced by ``***``."""
    for secret in secrets:
        if len(secret) >= _MIN_SECRET and secret in text:
            text = text.replace(secret, "***")
    return _TOKENS.sub(lambda m: "Bearer ***" if m[0][:1] in "bB" else "***", text)


def excerpt(body: bytes | str | None, limit: int = _EXCERPT, secrets: Iterable[str] = ()) -> str:
    """A short, single-line, printable piece of a response body for error messages, with
    credentials redacted."""
    if not body:
        return ""
    body = body[: limit * 8]  # a capped answer can still be megabytes; only the start is shown
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = redact(text, secrets)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class KlingError(Exception):
    """Root of every error raised by kling_async."""


class APIError(KlingError):
    """The API refused the request.

    ``code`` is Kling's business code (``None`` when the answer had none, e.g. an HTML page from a
    gateway); ``http_status`` is secondary: the business code decides the class.
    """

    default_retryable = False

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        request_id: str | None = None,
        http_status: int | None = None,
        retryable: bool | None = None,
        body_excerpt: str = "",
        retry_after: float | None = None,
    ) -> None:
        self.message = message
        self.code = code
        self.request_id = request_id
        self.http_status = http_status
        self.retryable = self.default_retryable if retryable is None else retryable
        self.body_excerpt = body_excerpt
        self.retry_after = retry_after
        super().__init__(message)

    def __str__(self) -> str:
        parts = [f"HTTP {self.http_status}" if self.http_status is not None else None]
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        where = ", ".join(p for p in parts if p)
        head = f"[{self.code}] " if self.code is not None else ""
        tail = f": {self.body_excerpt!r}" if self.body_excerpt and self.code is None else ""
        return f"{head}{self.message} ({where}){tail}" if where else f"{head}{self.message}{tail}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code!r}, message={self.message!r}, "
            f"request_id={self.request_id!r}, http_status={self.http_status!r}, "
            f"retryable={self.retryable!r})"
        )


class AuthenticationError(APIError):
    """1000–1004. 1003 (not yet valid) and 1004 (expired) are fixed by minting a new token.

    ``clock_skew`` (seconds, server minus client) is set on a 1003/1004 when the server's
    ``Date`` header shows the client's clock far off, which no fresh token can fix; the
    message names it too.
    """

    clock_skew: float | None = None

    @property
    def token_stale(self) -> bool:
        return self.code in (1003, 1004)


class AccountError(APIError):
    """1100–1103: the account cannot run this request now."""


class InsufficientBalanceError(AccountError):
    """1102: resource pack exhausted or expired. HTTP 429, but a billing problem, not throttling."""


class PreflightBalanceError(InsufficientBalanceError):
    """A batch's pre-flight estimate needs more units than the account's packs have left, so
    nothing was sent (an :class:`InsufficientBalanceError` the client raises itself: ``code``
    is ``None``). ``needed`` and ``remaining`` are units per product (``"video"``, ``"image"``,
    ``"try-on"``; ``None``: packs whose name names no product, usable by any); ``estimated``
    names the kinds whose cost is an estimate, not a documented price."""

    def __init__(
        self,
        *,
        needed: dict[str | None, float],
        remaining: dict[str | None, float],
        estimated: tuple[str, ...] = (),
    ) -> None:
        self.needed = needed
        self.remaining = remaining
        self.estimated = estimated
        wants = ", ".join(f"{units:g} {product} units" for product, units in needed.items())
        has = ", ".join(
            f"{units:g} {product or 'any-product'}" for product, units in remaining.items()
        )
        guess = f" (estimated for {', '.join(estimated)})" if estimated else ""
        super().__init__(
            f"pre-flight: the batch needs {wants}{guess} but the packs have {has or 'none'} "
            "left; nothing was sent (preflight=False, or the CLI without --preflight, sends "
            "anyway)"
        )


class PermissionDeniedError(AccountError):
    """1103: no permission for this API or model."""


class InvalidRequestError(APIError):
    """1200–1203: the request is wrong; sending it again will not help."""


class NotFoundError(InvalidRequestError):
    """1203 (or HTTP 404 without a code): the task or resource does not exist."""


class ExternalIdConflictError(InvalidRequestError):
    """The ``external_task_id`` of a create already names a task on the account, made by a
    different request (another kind or source video): nothing was created.

    ``task`` is that existing task where the client could read it, else ``None`` (it is of a
    kind this create's route does not show). A create whose ``external_task_id`` names a task of
    the *same* request does not raise: it returns that task (an idempotency key).
    """

    def __init__(self, message: str, *, external_task_id: str, task: Task | None) -> None:
        super().__init__(message, code=1201)
        self.external_task_id = external_task_id
        self.task = task


class PolicyError(APIError):
    """1300, 1301, 1304: platform, content-security or IP-whitelist policy."""


class RateLimitError(APIError):
    """1302: requests too fast."""

    default_retryable = True


class ConcurrencyLimitError(APIError):
    """1303: all task slots are busy. The create was refused: no task exists."""

    default_retryable = True


class SlotTimeoutError(ConcurrencyLimitError):
    """No task slot came free within ``slot_timeout`` seconds. No request was sent and no task
    was created (a :class:`ConcurrencyLimitError` the client raises itself: ``code`` is
    ``None``); create again later, or raise the time-out."""

    def __init__(self, timeout: float, *, in_use: int, limit: int) -> None:
        self.timeout = timeout
        self.in_use = in_use
        self.limit = limit
        super().__init__(
            f"no task slot came free within {timeout:g}s ({in_use} of {limit} held by this "
            "client); no task was created"
        )


class ServerError(APIError):
    """5000–5002, or an HTTP 5xx that carried no business code."""

    default_retryable = True


_BY_CODE: dict[int, type[APIError]] = {
    1102: InsufficientBalanceError,
    1103: PermissionDeniedError,
    1203: NotFoundError,
    1302: RateLimitError,
    1303: ConcurrencyLimitError,
}
_BY_RANGE: tuple[tuple[int, int, type[APIError]], ...] = (
    (1000, 1099, AuthenticationError),
    (1100, 1199, AccountError),
    (1200, 1299, InvalidRequestError),
    (1300, 1399, PolicyError),
    (5000, 5099, ServerError),
)


def _class_for_status(http_status: int) -> type[APIError]:
    if http_status >= 500:
        return ServerError
    if http_status == 401:
        return AuthenticationError
    if http_status == 404:
        return NotFoundError
    if http_status == 429:
        return RateLimitError
    return APIError


def api_error(
    *,
    code: int | None,
    message: str,
    request_id: str | None,
    http_status: int,
    body_excerpt: str = "",
    retry_after: float | None = None,
) -> APIError:
    """Build the error for an answer: business code first, HTTP status only as a fallback."""
    cls: type[APIError] | None = None
    if code is not None:
        cls = _BY_CODE.get(code)
        if cls is None:
            cls = next((c for lo, hi, c in _BY_RANGE if lo <= code <= hi), None)
    if cls is None:
        cls = _class_for_status(http_status)
    retryable: bool | None = None
    if cls is AuthenticationError and code in (1003, 1004):
        retryable = True  # after a re-mint, which the request path does itself
    elif cls is APIError and http_status >= 500:
        retryable = True
    return cls(
        message,
        code=code,
        request_id=request_id,
        http_status=http_status,
        retryable=retryable,
        body_excerpt=body_excerpt,
        retry_after=retry_after,
    )


class TransportError(KlingError):
    """No usable answer arrived.

    ``request_sent`` is False only when the failure provably happened before any byte of the
    request left (connection refused, DNS, TLS handshake): only then is a create safe to resend.
    """

    def __init__(
        self, message: str, *, request_sent: bool, method: str = "", path: str = ""
    ) -> None:
        self.message = message
        self.request_sent = request_sent
        self.method = method
        self.path = path
        super().__init__(message)

    def __str__(self) -> str:
        where = f" ({self.method} {self.path})" if self.method else ""
        return f"{self.message}{where}"


class RequestTimeoutError(TransportError):
    """The request timed out (connect, read or total)."""


class DownloadError(KlingError):
    """A video was not downloaded: its URL broke the media policy (scheme, private address,
    too many redirects) or the file could not be written."""


class ResponseFormatError(KlingError):
    """The answer could not be read as the expected envelope (truncated JSON, wrong shape)."""

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        request_id: str | None = None,
        body_excerpt: str = "",
        path: str = "",
    ) -> None:
        self.message = message
        self.http_status = http_status
        self.request_id = request_id
        self.body_excerpt = body_excerpt
        self.path = path
        super().__init__(message)

    def __str__(self) -> str:
        bits = [self.message]
        if self.http_status is not None:
            bits.append(f"HTTP {self.http_status}")
        if self.request_id:
            bits.append(f"request_id={self.request_id}")
        if self.body_excerpt:
            bits.append(f"body={self.body_excerpt!r}")
        return "; ".join(bits)


class AmbiguousSubmitError(KlingError):
    """A create was sent, its answer was lost, and no task could be found for it (yet).

    The task may exist and may be billed. Do not blindly send the create again: look it up with
    ``await client.find_submitted(err)`` (by ``external_task_id`` where there is one, else by the
    parent ``video_id`` created since ``sent_at``), later if need be.

    What a person needs to settle it: ``request`` (as sent), ``video_id`` / ``parent_task_id``,
    ``sent_at`` (client clock, seconds: the task, if any, was created soon after), and
    ``candidates``: ids of tasks of that parent video the client could not tell apart (a
    relay list scan that found several). ``lookup_error`` is set when the look-up itself
    failed (so "not found" was never even answered).
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        video_id: str | None,
        external_task_id: str | None,
        parent_task_id: str | None,
        sent_at: float,
        cause: BaseException | None = None,
        request: Any = None,
        candidates: tuple[str, ...] = (),
        lookup_error: BaseException | None = None,
        ref: Any = None,
    ) -> None:
        self.message = message
        self.ref = ref  # the client's name for this create, so find_submitted settles it
        self.candidates = tuple(candidates)
        self.lookup_error = lookup_error
        self.kind = kind
        self.video_id = video_id
        self.external_task_id = external_task_id
        self.parent_task_id = parent_task_id
        self.sent_at = sent_at
        self.cause = cause
        self.request = request
        super().__init__(message)

    def __str__(self) -> str:
        ids = f"external_task_id={self.external_task_id!r}, video_id={self.video_id!r}"
        if self.candidates:
            ids += f", candidates={list(self.candidates)!r}"
        return f"{self.message} ({self.kind}; {ids})"


class TaskFailedError(KlingError):
    """The task ended ``failed``; ``task.task_status_msg`` says why."""

    def __init__(self, task: Task) -> None:
        self.task = task
        reason = task.task_status_msg or "no reason given"
        super().__init__(f"task {task.task_id} ({task.kind}) failed: {reason}")


class TaskTimeoutError(KlingError):
    """We stopped waiting for the task. It goes on running (and may be billed) on the server."""

    def __init__(
        self, task_id: str, *, kind: str, timeout: float | None, last: Task | None
    ) -> None:
        self.task_id = task_id
        self.kind = kind
        self.timeout = timeout
        self.last = last
        status = last.task_status.value if last is not None else "not yet seen"
        super().__init__(
            f"task {task_id} ({kind}) not finished after {timeout}s (last status: {status}); "
            "it keeps running on the server"
        )


class RequestValidationError(KlingError, ValueError):
    """A request field is invalid. Raised before any network I/O."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class ConfigurationError(KlingError, ValueError):
    """The client was set up wrongly (no credentials, a bad base URL...)."""


class DatabaseError(KlingError):
    """The PostgreSQL database (a shared journal, a coordinator) could not be reached or used,
    or its schema was written by a newer kling_async. The message names the database by its
    DSN with any password replaced by ``***``."""


class DatabaseUnavailableError(DatabaseError):
    """PostgreSQL stayed unreachable for longer than the outage bound (``outage`` seconds):
    the statements that waited it out gave up, and the batch or worker using it stopped.
    Nothing is lost: what was sent is journalled (a lost answer is looked up on resume), so
    running the same batch again completes it."""

    def __init__(self, message: str, *, outage: float) -> None:
        super().__init__(message)
        self.outage = outage


class ClientClosedError(KlingError, RuntimeError):
    """The client was used after it was closed."""
