"""Callback-assisted recovery of lost create answers (issue #12, item 3).

With ``extend_many(..., callback_receiver=receiver)``, each create that carries a
``callback_url`` is sent with one more query parameter, ``ka_ref``: a short random token (not
the request's key, which may be a caller's ``external_task_id``). The token is part of the
request as sent, so the journal's intent holds it and a resumed batch knows it again. Kling
posts every status of the task to that URL; the receiver passes the URL's query along with the
event, and the token names the request the task belongs to even when the create's answer was
lost — on a relay without a list route, say, where nothing else can.

A callback only settles a create that is otherwise ambiguous, and only with a task this client
has not already given to a request. An unsigned callback is not believed: its task is fetched
by id first, and must exist, be of the request's parent video (for an extension) and
be created after the request was sent.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import urllib.parse
from collections.abc import Callable
from typing import Protocol

import attrs

from ..creates import Creator
from ..errors import KlingError
from ..models import Task
from ..requests import CreateRequest
from ..webhooks.payload import CallbackEvent

__all__ = ["PARAM", "CallbackClaims", "ListeningReceiver"]

log = logging.getLogger("kling_async")

PARAM = "ka_ref"  # the query parameter that carries a create's token
_SLACK = 120.0  # seconds of clock skew allowed between our send time and the task's creation
_KEEP = 8  # callbacks kept per request until it has its task (a task has four statuses)


class ListeningReceiver(Protocol):
    """What a batch needs of a receiver (:class:`~kling_async.webhooks.CallbackReceiver`)."""

    def listen(self, listener: Callable[[CallbackEvent], None]) -> Callable[[], None]: ...


def token_of(request: CreateRequest) -> str | None:
    """The token in ``request``'s callback URL, if it has one."""
    url = getattr(request, "callback_url", None)
    if not url:
        return None
    values = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query).get(PARAM)
    return values[-1] if values else None


def _event_token(event: CallbackEvent) -> str | None:
    values = urllib.parse.parse_qs(event.query).get(PARAM)
    return values[-1] if values else None


class CallbackClaims:
    """One batch's tokens, and the callbacks heard for them.

    Callbacks are only kept (a few per request) until the request has its task; they are
    looked at — and an unsigned one confirmed by a GET — only when a create turns out
    ambiguous, so callbacks of creates answered normally cost nothing.
    """

    def __init__(self, creator: Creator, receiver: ListeningReceiver, wait: float) -> None:
        if not wait >= 0:
            raise ValueError(f"callback_wait must be >= 0 seconds, got {wait!r}")
        self._creator = creator
        self._receiver = receiver
        self.wait = float(wait)
        self._keys: dict[str, str] = {}  # token -> request key
        self._requests: dict[str, CreateRequest] = {}  # key -> request as sent
        self._heard: dict[str, list[CallbackEvent]] = {}  # key -> callbacks not looked at yet
        self._waiters: dict[str, asyncio.Future[None]] = {}
        self._stop: Callable[[], None] | None = None

    def start(self) -> None:
        self._stop = self._receiver.listen(self._on_event)

    def close(self) -> None:
        if self._stop is not None:
            self._stop()
            self._stop = None

    def tag(self, key: str, request: CreateRequest) -> CreateRequest:
        """``request`` with a fresh token in its callback URL (existing query kept); unchanged
        if it has no callback URL (no callback can then name it)."""
        url = getattr(request, "callback_url", None)
        if not url:
            return request
        token = secrets.token_urlsafe(12)
        parts = urllib.parse.urlsplit(url)
        query = urllib.parse.urlencode(
            [*urllib.parse.parse_qsl(parts.query, keep_blank_values=True), (PARAM, token)]
        )
        tagged = attrs.evolve(request, callback_url=parts._replace(query=query).geturl())
        self.know(key, tagged)
        return tagged

    def know(self, key: str, request: CreateRequest) -> None:
        """Listen for the token of ``request`` as sent (a resumed batch: as journalled)."""
        token = token_of(request)
        if token is not None:
            self._keys[token] = key
            self._requests[key] = request

    def done(self, key: str) -> None:
        """``key`` has its task (or its outcome): its callbacks settle nothing any more."""
        request = self._requests.pop(key, None)
        if request is not None:
            self._keys.pop(token_of(request) or "", None)
        self._heard.pop(key, None)

    async def settle(self, key: str, sent_at: float | None) -> Task | None:
        """The task a believed callback names for the ambiguous create ``key``, waiting up to
        :attr:`wait` seconds (client clock) for one; ``None`` if none came."""
        if key not in self._requests:
            return None
        clock = self._creator.clock
        deadline = clock.monotonic() + self.wait
        while True:
            for event in self._heard.pop(key, []):
                task = await self._believe(key, event)
                if task is not None and self._fits(key, task, sent_at):
                    self._creator.remember(task.task_id)  # claimed: no other request takes it
                    return task
            left = deadline - clock.monotonic()
            if left <= 0 or key not in self._requests:
                return None
            waiter = self._waiters[key] = asyncio.get_running_loop().create_future()
            sleeper = asyncio.ensure_future(clock.sleep(left))
            try:
                await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                self._waiters.pop(key, None)

    def _on_event(self, event: CallbackEvent) -> None:
        key = self._keys.get(_event_token(event) or "")
        if key is None:
            return
        heard = self._heard.setdefault(key, [])
        if len(heard) < _KEEP:  # a flood of forgeries on one token is not kept
            heard.append(event)
        waiter = self._waiters.get(key)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _believe(self, key: str, event: CallbackEvent) -> Task | None:
        """The callback's task, from Kling itself if the callback is unsigned."""
        if event.verified:
            return event.task
        kind = self._requests[key].kind
        try:  # anyone may post to the URL: ask Kling about that task id
            task = await self._creator.fetch(event.task.task_id, kind)
        except KlingError as exc:
            log.warning("batch: unsigned callback for %s not confirmed: %s", key, exc)
            return None
        return task if task.task_id == event.task.task_id else None

    def _fits(self, key: str, task: Task, sent_at: float | None) -> bool:
        """Whether ``task`` (as Kling or a signed callback shows it) can be ``key``'s."""
        request = self._requests.get(key)
        if request is None or self._creator.knows(task.task_id):
            return False
        parent = task.task_info.parent_video
        wanted = request.parent_video_id
        if wanted is not None and (parent is None or parent.id != wanted):
            return False  # an extension shows its parent video: another task is not ours
        return sent_at is None or task.created_at >= (sent_at - _SLACK) * 1000
