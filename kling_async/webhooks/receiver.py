"""The :class:`CallbackReceiver`: verifies, reads and de-duplicates callbacks, then passes each
new one to ``on_event`` and to a client's poll scheduler.

It knows nothing of HTTP; :mod:`kling_async.webhooks.http` serves it over aiohttp or ASGI.
"""

from __future__ import annotations

import collections
import hashlib
import inspect
import logging
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Protocol

import attrs

from ..clock import Clock, SystemClock
from ..errors import ResponseFormatError
from ..kinds import kind_named
from ..models import Task
from .payload import CallbackEvent, parse_callback
from .signing import DEFAULT_TOLERANCE, SignatureError, WebhookSecret, verify

__all__ = ["CallbackReceiver", "HintSink", "Listener", "OnEvent", "WatchingClient"]

log = logging.getLogger("kling_async")


OnEvent = Callable[[CallbackEvent], object]  # a plain function, or one returning an awaitable
Listener = Callable[[CallbackEvent], None]  # told of each new event (a batch, see listen())


class HintSink(Protocol):
    """What the receiver needs from a poll scheduler (a
    :class:`~kling_async.polling.PollScheduler`)."""

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
_MAX_KEY = 64  # longer ids are remembered by a digest: a sender chooses their size


def _key(value: str) -> str:
    if len(value) <= _MAX_KEY:
        return value
    return "#" + hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


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


class _Counts:
    """How often each of the last ``size`` keys was counted (least recently counted forgotten
    first)."""

    __slots__ = ("_counts", "_size")

    def __init__(self, size: int) -> None:
        self._counts: collections.OrderedDict[Hashable, int] = collections.OrderedDict()
        self._size = size

    def __getitem__(self, key: Hashable) -> int:
        return self._counts.get(key, 0)

    def add(self, key: Hashable, n: int = 1) -> None:
        count = self._counts.get(key, 0) + n
        if count <= 0:
            self._counts.pop(key, None)
            return
        self._counts[key] = count
        self._counts.move_to_end(key)
        while len(self._counts) > self._size:
            self._counts.popitem(last=False)


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
    among the last ``remember`` events (all statuses the client does not know count as one,
    and ids over 64 characters are remembered by a digest, so the memory stays small whatever
    is posted). The second rule also stops a flood of unsigned forgeries from costing one
    confirming GET each; the price, without a secret, is that a forged ``(task_id, status)``
    that arrives first hides the genuine one, whose change is then seen on the next safety poll
    instead. Without a secret, at most ``max_unsigned_per_task`` events per task are passed on
    (each costs the client a confirming GET; a task has at most four real statuses), later ones
    are dropped as repeats; and creating the receiver logs a warning. Set a secret if the URL
    is reachable by others.
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
        max_unsigned_per_task: int = 5,
    ) -> None:
        self.kind = kind_named(kind).name
        if not tolerance > 0:
            raise ValueError("tolerance must be > 0 seconds")
        if remember < 1:
            raise ValueError("remember must be >= 1")
        if max_unsigned_per_task < 1:
            raise ValueError("max_unsigned_per_task must be >= 1")
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
        self._unsigned = _Counts(remember)
        self.max_unsigned_per_task = max_unsigned_per_task
        if self._secret is None:
            log.warning(
                "CallbackReceiver for %s has no secret: anyone who knows its URL can post "
                "callbacks (each is confirmed by a GET before it counts); pass secret='whsec_...'",
                self.kind,
            )
        self._listeners: list[Listener] = []
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

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Tell ``listener`` of each new event too (after the scheduler's hint); returns the
        function that stops it. ``extend_many(callback_receiver=...)`` listens this way for the
        callbacks of creates whose answer was lost."""
        self._listeners.append(listener)

        def stop() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return stop

    async def receive(
        self,
        headers: Mapping[str, str] | Iterable[tuple[str, str]],
        body: bytes,
        *,
        query: str = "",
    ) -> CallbackEvent | None:
        """Check and read one delivery; the new :class:`CallbackEvent`, or ``None`` for a repeat.

        ``headers`` is any mapping (names compared case-insensitively) or ``(name, value)``
        pairs; ``body`` the raw bytes as received (the signature covers them, so do not decode
        and re-encode); ``query`` the query string of the URL it was posted to (copied onto the
        event: a per-create callback URL says there which create it was made for). Raises
        :class:`SignatureError` (with a secret: missing, malformed, stale, future or
        non-matching signature) or :class:`~kling_async.ResponseFormatError` (not a
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
        if query:
            event = attrs.evolve(event, query=query)
        task = event.task
        task_key = _key(task.task_id)
        # Every status we cannot read is one key: a sender inventing new ones gets one through.
        status_key = (task_key, task.task_status.value)
        id_key = None if webhook_id is None else _key(webhook_id)
        if (
            (id_key is not None and id_key in self._ids)
            or status_key in self._statuses
            or (not event.verified and self._unsigned[task_key] >= self.max_unsigned_per_task)
        ):
            self.duplicates += 1
            return None
        if id_key is not None:
            self._ids.add(id_key)
        self._statuses.add(status_key)
        if not event.verified:
            self._unsigned.add(task_key)
        try:
            await self._deliver(event)
        except BaseException:
            # Not handled: let a retry of this delivery through.
            if id_key is not None:
                self._ids.discard(id_key)
            self._statuses.discard(status_key)
            if not event.verified:
                self._unsigned.add(task_key, -1)
            raise
        self.accepted += 1
        return event

    async def _deliver(self, event: CallbackEvent) -> None:
        if self.client is not None:
            self.client.scheduler.hint(event.task, trusted=event.verified)
        for listener in list(self._listeners):
            listener(event)
        if self.on_event is not None:
            result = self.on_event(event)
            if inspect.isawaitable(result):
                await result
