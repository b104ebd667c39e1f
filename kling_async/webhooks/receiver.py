"""The :class:`CallbackReceiver`: verifies, reads and de-duplicates callbacks, then passes each
new one to ``on_event`` and to a client's poll scheduler.

It knows nothing of HTTP; :mod:`kling_async.webhooks.http` serves it over aiohttp or ASGI.
"""

from __future__ import annotations

import collections
import inspect
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Protocol

from ..clock import Clock, SystemClock
from ..errors import ResponseFormatError
from ..kinds import kind_named
from ..models import Task, TaskStatus
from .payload import CallbackEvent, parse_callback
from .signing import DEFAULT_TOLERANCE, SignatureError, WebhookSecret, verify

__all__ = ["CallbackReceiver", "HintSink", "OnEvent", "WatchingClient"]


OnEvent = Callable[[CallbackEvent], object]  # a plain function, or one returning an awaitable


class HintSink(Protocol):
    """What the receiver needs from a poll scheduler (:class:`kling_async.watch.PollScheduler`)."""

    def hint(self, task: Task, *, trusted: bool) -> object: ...


class WatchingClient(Protocol):
    """What the receiver needs from a client (:class:`kling_async.KlingClient`).

    Its poll scheduler, to hint each new event to, and its clock, the default for checking
    signature timestamps.
    """

    @property
    def scheduler(self) -> HintSink: ...

    @property
    def clock(self) -> Clock: ...


_WEBHOOK_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


class _Recent:
    """A set of the last ``size`` keys seen (least recently seen forgotten first)."""

    __slots__ = ("_keys", "_size")

    def __init__(self, size: int) -> None:
        self._keys: collections.OrderedDict[Hashable, None] = collections.OrderedDict()
        self._size = size

    def __contains__(self, key: Hashable) -> bool:
        if key in self._keys:
            self._keys.move_to_end(key)
            return True
        return False

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: Hashable) -> None:
        self._keys[key] = None
        self._keys.move_to_end(key)
        while len(self._keys) > self._size:
            self._keys.popitem(last=False)

    def discard(self, key: Hashable) -> None:
        self._keys.pop(key, None)


def _webhook_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    """The three Standard-Webhooks headers, names case-insensitive.

    Repeated ``webhook-signature`` headers are joined (any one may match); a repeated
    ``webhook-id`` or ``webhook-timestamp`` with another value is ambiguous and reads as absent.
    """
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    found: dict[str, str] = {}
    for name, value in pairs:
        key = name.strip().lower()
        if key not in _WEBHOOK_HEADERS:
            continue
        value = value.strip()
        if key not in found:
            found[key] = value
        elif key == "webhook-signature":
            found[key] = f"{found[key]} {value}"
        elif found[key] != value:
            found[key] = ""
    return found


class CallbackReceiver:
    """Verifies, reads and de-duplicates callbacks, then passes each new one on.

    ``secret`` is the account's ``whsec_...`` Webhook Secret: with it, every callback must carry
    a valid ``webhook-signature`` over its raw body, made at most ``tolerance`` seconds from
    ``clock.time()`` either way (stops replays), or :meth:`receive` raises
    :class:`SignatureError`. Without it callbacks are accepted as ``verified=False``.

    ``client``: each new event is passed to ``client.scheduler.hint(task, trusted=verified)``,
    which wakes the client's ``watch()``/``wait()`` on it. ``on_event(event)`` (plain or async)
    is called too; if it raises, the event is forgotten again so a retried delivery is accepted.
    ``kind`` is the task family the callbacks are for (bodies do not say; use one receiver and
    URL per kind). ``clock`` defaults to the client's, else the system clock.

    ``secret`` may also be the raw key bytes. Call :meth:`receive` on the client's event loop.

    Repeats are dropped: an event whose ``webhook-id``, or whose ``(task_id, status)``, was seen
    among the last ``remember`` events. The second rule also stops a flood of unsigned forgeries
    from costing one confirming GET each; the price, without a secret, is that a forged
    ``(task_id, status)`` that arrives first hides the genuine one, whose change is then seen on
    the next safety poll instead. Set a secret if the URL is reachable by others.
    """

    def __init__(
        self,
        *,
        secret: str | bytes | WebhookSecret | None = None,
        client: WatchingClient | None = None,
        on_event: OnEvent | None = None,
        kind: str = "video-extend",
        clock: Clock | None = None,
        tolerance: float = DEFAULT_TOLERANCE,
        remember: int = 10_000,
    ) -> None:
        self.kind = kind_named(kind).name
        if not tolerance > 0:
            raise ValueError("tolerance must be > 0 seconds")
        if remember < 1:
            raise ValueError("remember must be >= 1")
        # An empty string is refused (by WebhookSecret), not read as "unsigned": an unset
        # environment variable must not silently turn verification off.
        self._secret = (
            secret if secret is None or isinstance(secret, WebhookSecret) else WebhookSecret(secret)
        )
        self.client = client
        self.on_event = on_event
        self.clock: Clock = clock or (client.clock if client is not None else SystemClock())
        self.tolerance = float(tolerance)
        self._ids = _Recent(remember)
        self._statuses = _Recent(remember)
        self.accepted = 0
        self.duplicates = 0
        self.refused = 0

    @property
    def signed(self) -> bool:
        """Whether signatures are required (a secret was given)."""
        return self._secret is not None

    def __repr__(self) -> str:
        return (
            f"CallbackReceiver(signed={self.signed}, kind={self.kind!r}, "
            f"tolerance={self.tolerance:g}, accepted={self.accepted}, "
            f"duplicates={self.duplicates}, refused={self.refused})"
        )

    async def receive(
        self, headers: Mapping[str, str] | Iterable[tuple[str, str]], body: bytes
    ) -> CallbackEvent | None:
        """Check and read one delivery; the new :class:`CallbackEvent`, or ``None`` for a repeat.

        ``headers`` is any mapping (names compared case-insensitively) or ``(name, value)``
        pairs; ``body`` the raw bytes as received (the signature covers them, so do not decode
        and re-encode). Raises :class:`SignatureError` (with a secret: missing, malformed, stale,
        future or non-matching signature) or :class:`~kling_async.ResponseFormatError` (not a
        callback body); neither message contains the secret.
        """
        fields = _webhook_headers(headers)
        webhook_id = fields.get("webhook-id") or None
        try:
            if self._secret is not None:
                verify(
                    self._secret,
                    msg_id=webhook_id,
                    timestamp=fields.get("webhook-timestamp"),
                    signature=fields.get("webhook-signature"),
                    body=body,
                    now=self.clock.time(),
                    tolerance=self.tolerance,
                )
            event = parse_callback(
                body, kind=self.kind, webhook_id=webhook_id, verified=self._secret is not None
            )
        except (SignatureError, ResponseFormatError):
            self.refused += 1
            raise
        task = event.task
        status = task.raw_status if task.task_status is TaskStatus.UNKNOWN else task.task_status
        status_key = (task.task_id, str(status))
        if (webhook_id is not None and webhook_id in self._ids) or status_key in self._statuses:
            self.duplicates += 1
            return None
        if webhook_id is not None:
            self._ids.add(webhook_id)
        self._statuses.add(status_key)
        try:
            await self._deliver(event)
        except BaseException:
            # Not handled: let a retry of this delivery through.
            if webhook_id is not None:
                self._ids.discard(webhook_id)
            self._statuses.discard(status_key)
            raise
        self.accepted += 1
        return event

    async def _deliver(self, event: CallbackEvent) -> None:
        if self.client is not None:
            self.client.scheduler.hint(event.task, trusted=event.verified)
        if self.on_event is not None:
            result = self.on_event(event)
            if inspect.isawaitable(result):
                await result
