"""Retry policy: the one place that decides whether and when a request is sent again.

Two rules, from kling-api.md §7 and the design's invariants:

* **Reads** (get, list) are safe to repeat: they retry transport failures, garbled answers,
  5xx/5000–5002, 1302 and 1303, and 1003/1004 once after the token is re-minted.
* **Creates** cost money: they retry only when the create provably did not happen — the
  request never left (connect phase), 1302, 1303 (refused: no task exists), or 1003/1004 once
  after re-minting. A lost answer is *not* retried here; the client looks the task up instead
  (:mod:`kling_async.creates`), and only an authoritative "not found" lets a resumed batch send
  it again.

Waits are exponential with full jitter (``backoff.full_jitter``); a ``Retry-After`` header is
honoured exactly, up to ``retry_after_cap``; 1303 waits at least one second (the official
advice). backoff runs the loop; the waiting itself goes through the injected clock, so tests run
on a fake clock or in no-wait mode and still see the waits that would have been slept.

A third rule, for the PostgreSQL database of a shared journal or coordinator
(:class:`OutagePolicy`, :class:`OutageRetrier`): a statement that failed because the connection
did (the server restarting, failing over, unreachable) is tried again until the database has
been failing for ``bound`` seconds — an outage is a pause, not a crash. Only statements that are
safe to repeat, or that check on a repeat whether the lost attempt took effect, are run this
way; the caller says which.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import attrs
import backoff

from .clock import Clock
from .errors import (
    APIError,
    AuthenticationError,
    ConcurrencyLimitError,
    KlingError,
    RateLimitError,
    ResponseFormatError,
    TransportError,
)

__all__ = [
    "OutagePolicy",
    "OutageRetrier",
    "RetryEvent",
    "RetryPolicy",
    "Retrier",
    "retryable_create",
    "retryable_create_gated",
    "retryable_create_unthrottled",
    "retryable_read",
]

T = TypeVar("T")
log = logging.getLogger("kling_async")


@attrs.frozen
class RetryEvent:
    """What an ``on_retry``/``on_giveup`` hook is told."""

    operation: str
    attempt: int
    wait: float
    elapsed: float
    error: BaseException


@attrs.frozen
class RetryPolicy:
    """How hard to try. ``wait=False`` is the no-wait mode for tests: waits are computed and
    reported to the hooks, but not slept."""

    max_attempts: int | None = 6
    max_time: float | None = 120.0
    base: float = 0.5
    cap: float = 30.0
    retry_after_cap: float = 120.0
    concurrency_floor: float = 1.0
    wait: bool = True
    jitter: Callable[[float], float] = backoff.full_jitter
    on_retry: Callable[[RetryEvent], object] | None = None
    on_giveup: Callable[[RetryEvent], object] | None = None

    @classmethod
    def no_wait(cls, **changes: Any) -> RetryPolicy:
        return cls(wait=False, **changes)

    def delay(self, attempt: int, error: BaseException) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            return float(min(retry_after, self.retry_after_cap))
        wait = self.jitter(min(self.cap, self.base * 2 ** (attempt - 1)))
        if isinstance(error, ConcurrencyLimitError):
            wait = max(wait, self.concurrency_floor)
        return float(wait)


def _stale_token(error: BaseException) -> bool:
    return isinstance(error, AuthenticationError) and error.token_stale


def retryable_read(error: BaseException) -> bool:
    """May a read (get/list) be sent again after ``error``?"""
    if isinstance(error, (TransportError, ResponseFormatError)):
        return True
    return isinstance(error, APIError) and error.retryable


def _refused(error: BaseException) -> bool:
    """1302/1303 *as business codes*: a bare HTTP 429 from a proxy proves nothing."""
    return isinstance(error, (RateLimitError, ConcurrencyLimitError)) and error.code in (1302, 1303)


def retryable_create(error: BaseException) -> bool:
    """May a create be sent again after ``error``? Only if it provably created nothing."""
    if isinstance(error, TransportError):
        return not error.request_sent
    return _refused(error) or _stale_token(error)


def retryable_create_gated(error: BaseException) -> bool:
    """Like :func:`retryable_create`, but a 1303 is left to the slot gate, which re-queues the
    create until one of the client's own tasks ends instead of retrying blindly."""
    return not isinstance(error, ConcurrencyLimitError) and retryable_create(error)


def retryable_create_unthrottled(error: BaseException) -> bool:
    """Like :func:`retryable_create`, but 1302/1303 are left to the caller: a batch answers
    them by shrinking its slot gate and re-queuing, not by retrying in place."""
    if isinstance(error, TransportError):
        return not error.request_sent
    return _stale_token(error)


@attrs.define
class _Call:
    fn: Callable[[], Awaitable[Any]]
    operation: str
    started: float
    first_error: KlingError | None = None
    stale_retries: int = 0


class Retrier:
    """Runs one operation under a :class:`RetryPolicy` with a retry predicate.

    Built once per client and predicate (the backoff decorator is made here, not per call);
    per-call state travels in a ``_Call``.
    """

    def __init__(
        self, policy: RetryPolicy, clock: Clock, should_retry: Callable[[BaseException], bool]
    ) -> None:
        self.policy = policy
        self.clock = clock
        self._should_retry = should_retry
        self._run = backoff.on_exception(
            backoff.constant,  # the real wait is slept in _before_retry on the injected clock
            KlingError,
            interval=0,
            jitter=None,
            max_tries=policy.max_attempts,
            giveup=self._give_up,
            on_backoff=self._before_retry,
            on_giveup=self._report_giveup,
            raise_on_giveup=True,
            logger=None,
        )(self._invoke)

    async def __call__(self, fn: Callable[[], Awaitable[T]], operation: str) -> T:
        started = self.clock.monotonic()
        try:
            # Nearly every call succeeds at once: make the first attempt without backoff's
            # per-call set-up (a details dict, two datetime.now(), a wait generator), ~5 us of
            # every request (benchmarks/README.md).
            return await fn()
        except KlingError as error:
            first = error
        # It failed: backoff takes over from that failure (replayed by _invoke as its first
        # attempt), so it counts, decides, reports and waits exactly as if it had made it.
        result: T = await self._run(_Call(fn, operation, started, first))
        return result

    @staticmethod
    async def _invoke(call: _Call) -> Any:
        first, call.first_error = call.first_error, None
        if first is not None:
            raise first
        return await call.fn()

    def _give_up(self, error: Exception) -> bool:
        return not self._should_retry(error)

    def _event(self, details: Any, wait: float) -> RetryEvent:
        call: _Call = details["args"][0]
        return RetryEvent(
            operation=call.operation,
            attempt=details["tries"],
            wait=wait,
            elapsed=self.clock.monotonic() - call.started,
            error=details["exception"],
        )

    async def again(
        self, operation: str, attempt: int, started: float, error: BaseException
    ) -> bool:
        """After ``attempt`` sends of ``operation`` (begun at ``started``, client monotonic
        clock) that provably did nothing, wait as the policy says and return ``True``; or
        return ``False`` (the give-up reported) when its attempts or time are spent.

        For a caller that proves the failure harmless itself — a create whose lost answer a
        look-up proved absent — so re-sends after that proof count against the same budget.
        """
        event = RetryEvent(operation, attempt, 0.0, self.clock.monotonic() - started, error)
        limit = self.policy.max_attempts
        if limit is not None and attempt >= limit:
            self._gave_up(event)
            return False
        return await self._pause(event, self.policy.delay(attempt, error))

    async def _pause(self, event: RetryEvent, wait: float) -> bool:
        """Wait ``wait`` seconds before the next attempt, unless that would pass the policy's
        ``max_time`` (then the give-up is reported and ``False`` returned)."""
        policy = self.policy
        if policy.max_time is not None and event.elapsed + wait > policy.max_time:
            self._gave_up(event)
            return False
        event = attrs.evolve(event, wait=wait)
        log.info(
            "retrying %s after %s (attempt %d, waiting %.2fs)",
            event.operation,
            type(event.error).__name__,
            event.attempt,
            wait,
        )
        if policy.on_retry is not None:
            policy.on_retry(event)
        if policy.wait and wait > 0:
            await self.clock.sleep(wait)
        return True

    async def _before_retry(self, details: Any) -> None:
        call: _Call = details["args"][0]
        error: BaseException = details["exception"]
        if _stale_token(error):
            # A fresh token either works at once or the credentials are wrong: retry once.
            call.stale_retries += 1
            wait = 0.0
            if call.stale_retries > 1:
                await self._report_giveup(details)
                raise error
        else:
            wait = self.policy.delay(details["tries"], error)
        if not await self._pause(self._event(details, 0.0), wait):
            raise error

    async def _report_giveup(self, details: Any) -> None:
        self._gave_up(self._event(details, 0.0))

    def _gave_up(self, event: RetryEvent) -> None:
        log.info(
            "giving up on %s after %d attempt(s): %s",
            event.operation,
            event.attempt,
            type(event.error).__name__,
        )
        if self.policy.on_giveup is not None:
            self.policy.on_giveup(event)


# -- database outages --------------------------------------------------------------------------


@attrs.frozen
class OutagePolicy:
    """How long a database outage is waited out: ``bound`` seconds from the first failure of
    the outage (not of each statement: every statement on the database gives up together), in
    attempts spaced ``base`` doubling up to ``cap`` seconds, fully jittered so that the workers
    coming back do not reconnect in step."""

    bound: float = 60.0
    base: float = 0.05
    cap: float = 2.0
    jitter: Callable[[float], float] = backoff.full_jitter

    def __attrs_post_init__(self) -> None:
        if not self.bound >= 0:
            raise ValueError(f"the outage bound must be >= 0 seconds, got {self.bound!r}")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return float(self.jitter(min(self.cap, self.base * 2 ** (attempt - 1))))


@attrs.define
class _Statement:
    fn: Callable[[], Awaitable[Any]]
    operation: str
    attempts: int = 0


class OutageRetrier:
    """Runs the statements of one database under an :class:`OutagePolicy`.

    ``lost(error)`` says whether ``error`` is the connection failing (retried) rather than the
    statement (raised at once). The outage's start is shared by every statement run here, and
    a success anywhere ends it. Past the bound the last error is raised; the caller names it.
    ``clock`` paces the attempts: a database restarts on the wall clock, whatever the client's
    clock says, so it is the system's unless a test gives another.
    """

    def __init__(
        self, policy: OutagePolicy, clock: Clock, lost: Callable[[BaseException], bool]
    ) -> None:
        self.policy = policy
        self.clock = clock
        self._lost = lost
        #: When the current outage began (``clock.monotonic()``), or ``None``: reachable.
        self.down_since: float | None = None
        #: Outages waited out or given up on, and statements repeated: for tests and benchmarks.
        self.outages = 0
        self.repeats = 0
        self._told = False
        self._run = backoff.on_exception(
            backoff.constant,  # the real wait is slept in _before_retry on the clock
            Exception,
            interval=0,
            jitter=None,
            max_tries=None,
            giveup=self._give_up,
            on_backoff=self._before_retry,
            raise_on_giveup=True,
            logger=None,
        )(self._attempt)

    @property
    def down_for(self) -> float:
        """Seconds the database has been failing (0 while it answers)."""
        return 0.0 if self.down_since is None else self.clock.monotonic() - self.down_since

    async def __call__(self, fn: Callable[[], Awaitable[T]], operation: str) -> T:
        result: T = await self._run(_Statement(fn, operation))
        return result

    async def _attempt(self, statement: _Statement) -> Any:
        statement.attempts += 1
        result = await statement.fn()
        if self.down_since is not None:
            log.warning(
                "PostgreSQL answers again after %.1fs; %s went through", self.down_for,
                statement.operation,
            )  # fmt: skip
            self.down_since = None
        return result

    def _give_up(self, error: Exception) -> bool:
        if not self._lost(error):
            return True
        if self.down_since is None:
            self.down_since = self.clock.monotonic()
            self.outages += 1
            self._told = False
        return self.down_for >= self.policy.bound

    async def _before_retry(self, details: Any) -> None:
        statement: _Statement = details["args"][0]
        self.repeats += 1
        if not self._told:  # once per outage, not once per statement waiting it out
            self._told = True
            log.warning(
                "PostgreSQL unreachable (%s during %s); retrying for up to %gs",
                type(details["exception"]).__name__, statement.operation, self.policy.bound,
            )  # fmt: skip
        left = self.policy.bound - self.down_for
        await self.clock.sleep(max(0.0, min(self.policy.delay(statement.attempts), left)))
