"""The emulated account's business rules, with no HTTP in them: create, query, list, seed.

Every kind goes through the same :meth:`EmulatorCore.create`; what differs per kind is in the
table of :mod:`._kinds` (validator, output, external ids, slots, pack). A create is checked
in this order: the body (1201, or 1203 for an unknown model), the account's policy (1100,
1101, 1103, 1301: :mod:`._policy`), the ``external_task_id`` (kling-api.md 3.1: unique per
account), the images (``check_images``: :mod:`._images`), then the limits (1302, 1102, 1303:
:mod:`._limits`).

Behaviours the docs leave open are :class:`Readings`, one knob each (``KlingEmulator``
documents the defaults and why).
"""

from __future__ import annotations

import collections
import random
from collections.abc import Callable
from typing import Any, Literal

import attrs

from kling_async.clock import Clock
from kling_async.testing._callbacks import CallbackDispatcher
from kling_async.testing._durations import Durations
from kling_async.testing._faces import FaceSession, FaceSessions
from kling_async.testing._images import ImageCheck, image_problem
from kling_async.testing._kinds import CreateContext, Flavour, Kind, Plan
from kling_async.testing._limits import AccountLimits
from kling_async.testing._packs import AccountPacks
from kling_async.testing._policy import AccountPolicy
from kling_async.testing._replies import ApiError
from kling_async.testing._tasks import ImageRecord, Phase, TaskRecord, TaskStore, VideoRecord
from kling_async.testing._validation import optional_id, optional_url, optional_watermark
from kling_async.testing._wire import VIDEO_MEDIA_DIR, created_object, task_object
from kling_async.webhooks.signing import WebhookSecret

__all__ = ["EmulatorCore", "EmulatorStats", "FailWhen", "Readings"]

FailWhen = Callable[[dict[str, Any]], "str | None"]

PURGE_AFTER = 30 * 86_400.0  # generated media are cleared after 30 days (kling-api.md 8.4)
RANDOM_FAILURE = "Failure to pass the risk control system"


@attrs.frozen
class Readings:
    """The emulator's choices where the docs are silent (see ``KlingEmulator``)."""

    list_order: Literal["newest", "oldest"] = "newest"
    duplicate_external_id: Literal["refuse", "accept"] = "refuse"
    relay_external_task_id: bool = False
    check_images: ImageCheck | None = None

    def __attrs_post_init__(self) -> None:
        if self.list_order not in ("newest", "oldest"):
            raise ValueError("list_order must be 'newest' or 'oldest'")
        if self.duplicate_external_id not in ("refuse", "accept"):
            raise ValueError("duplicate_external_id must be 'refuse' or 'accept'")
        if self.check_images not in (None, "refuse", "fail"):
            raise ValueError("check_images must be None, 'refuse' or 'fail'")


@attrs.define
class EmulatorStats:
    """What the emulator saw.

    ``requests`` is keyed ``(method, route, http_status)``: route is ``create``, ``get``,
    ``list``, ``account`` (``/account/costs``), ``media`` or ``other``; status ``0`` means the
    connection was dropped unanswered. ``max_slots_in_use`` is the peak of task slots held in
    all pools together (one per task, ``n`` per image generation task), measured at each
    create. ``creates`` lists every create the account
    handled (faults that replace handling, like ``DROP_BEFORE``, never reach it), in order:
    its body and the id of the task it made (``None``: refused), so a test can tell a create
    sent again after its task existed.
    """

    created: int = 0
    requests: collections.Counter[tuple[str, str, int]] = attrs.field(factory=collections.Counter)
    max_slots_in_use: int = 0
    creates: list[tuple[dict[str, Any], str | None]] = attrs.field(factory=list)


class EmulatorCore:
    """Tasks, videos, limits and callbacks of one emulated account."""

    def __init__(
        self,
        *,
        clock: Clock,
        durations: Durations,
        failure_rate: float,
        fail_when: FailWhen | None,
        limits: AccountLimits,
        require_relay_parent: bool,
        webhook_secret: WebhookSecret | tuple[WebhookSecret, ...] | None,
        seed: int,
        policy: AccountPolicy | None = None,
        readings: Readings | None = None,
        sign_callbacks: bool = True,
        submitted_callback: bool = True,
    ) -> None:
        if not 0.0 <= failure_rate <= 1.0:
            raise ValueError("failure_rate must be in [0, 1]")
        self.clock = clock
        self.limits = limits
        self.packs = AccountPacks(limits, clock.time())
        self.stats = EmulatorStats()
        self.store = TaskStore(random.Random(f"{seed}:ids"))
        self.policy = policy or AccountPolicy()
        self.readings = readings or Readings()
        self.callbacks = CallbackDispatcher(
            clock,
            self.render,
            webhook_secret,
            signed=sign_callbacks,
            submitted=submitted_callback,
        )
        self.base_url = ""  # set once the server has its port
        self._durations = durations
        self._failure_rate = failure_rate
        self._fail_when = fail_when
        self._require_relay_parent = require_relay_parent
        self._outcomes = random.Random(f"{seed}:outcomes")
        self.faces = FaceSessions(random.Random(f"{seed}:faces"))

    def create(self, kind: Kind, flavour: Flavour, body: dict[str, Any]) -> dict[str, Any]:
        """Validate, check the limits, then create and charge; returns the create ``data``."""
        try:
            data = self._create(kind, flavour, body)
        except ApiError:
            self.stats.creates.append((dict(body), None))
            raise
        self.stats.creates.append((dict(body), str(data["task_id"])))
        return data

    def _create(self, kind: Kind, flavour: Flavour, body: dict[str, Any]) -> dict[str, Any]:
        assert kind.validate is not None, f"{kind.name} is not creatable"
        ctx = CreateContext(
            flavour, self._require_relay_parent, self.find_video, self.video_at, self._session
        )
        plan = kind.validate(body, ctx)
        callback_url = optional_url(body, "callback_url")
        takes_external = kind.takes_external_task_id and (
            flavour == "official" or self.readings.relay_external_task_id
        )
        external_task_id = optional_id(body, "external_task_id") if takes_external else None
        watermark = optional_watermark(body)
        self.policy.check_create(kind.name, _model_of(body), body)
        if (
            external_task_id is not None
            and self.store.by_external(external_task_id)
            and self.readings.duplicate_external_id == "refuse"
        ):
            raise ApiError.invalid("external_task_id already exists on this account")
        failure = self._failure(body)
        if self.readings.check_images is not None:
            problem = image_problem(body, kind.image_fields)
            if problem is not None and self.readings.check_images == "refuse":
                raise ApiError.invalid(problem)
            failure = problem or failure
        slots = kind.slots(plan)
        now = self.clock.time()
        self.limits.check(now, slots, kind.pack)

        queued, running = self._durations.draw(body, kind.name)
        task = TaskRecord(
            task_id=self.store.new_task_id(),
            kind=kind.name,
            created_at=now,
            queued=queued,
            running=running,
            seq=self.store.next_seq(),
            failure=failure,
            external_task_id=external_task_id,
            parent=plan.parent,
            output=kind.output,
            slots=slots,
            watermark=watermark,
            callback_url=callback_url,
            units=self.limits.unit_cost,
            body=dict(body),
        )
        self._make_results(task, plan, kind.name)
        self.store.add(task)
        in_use = self.limits.commit(now, task.ends_at, slots, kind.pack)
        self.stats.created += 1
        self.stats.max_slots_in_use = max(self.stats.max_slots_in_use, in_use)
        if callback_url is not None:
            self.callbacks.schedule(task)
        return created_object(task)

    def identify_face(self, body: dict[str, Any]) -> dict[str, Any]:
        """``identify-face`` (kling-api-more-kinds.md §7.1): no task, a session (:mod:`._faces`)."""
        now = self.clock.time()
        return self.faces.identify(
            body, now=now, base_url=self.base_url, video=self.find_video, video_at=self.video_at
        )

    def _session(self, session_id: str) -> FaceSession:
        return self.faces.find(session_id, self.clock.time())

    def get(self, kind: Kind, ident: str) -> dict[str, Any]:
        """One task of ``kind`` by task id, else by external_task_id."""
        task = self.store.resolve(ident)
        if task is None or task.kind != kind.name:
            raise ApiError.not_found("task not found")
        return self.render_now(task)

    def by_external(self, kind: Kind, external_task_id: str) -> list[dict[str, Any]]:
        found = self.store.by_external(external_task_id)
        return [self.render_now(task) for task in found if task.kind == kind.name]

    def page(self, kind: Kind, page_num: int, page_size: int) -> list[dict[str, Any]]:
        """Tasks of ``kind``, one page of them, in the ``list_order`` reading (kling-api.md
        4.2 documents no order)."""
        start = (page_num - 1) * page_size
        newest = self.readings.list_order == "newest"
        chosen = self.store.ordered(kind.name, newest_first=newest)[start : start + page_size]
        return [self.render_now(task) for task in chosen]

    def seed_video(
        self,
        duration: float,
        video_id: str | None,
        task_id: str | None,
        age: float,
        kind: str = "text2video",
        model: str = "kling-v1",
    ) -> VideoRecord:
        """Register a finished task of ``kind`` owning one video by ``model``, ``age`` seconds
        old."""
        if not duration > 0:
            raise ValueError("duration must be > 0")
        if age < 0:
            raise ValueError("age must be >= 0")
        task_id = task_id or self.store.new_task_id()
        video_id = video_id or self.store.new_video_id()
        if task_id in self.store.tasks or video_id in self.store.videos:
            raise ValueError("task_id or video_id is already in use")
        born = self.clock.time() - age
        task = TaskRecord(
            task_id=task_id,
            kind=kind,
            created_at=born,
            queued=0.0,
            running=0.0,
            seq=self.store.next_seq(),
            units=self.limits.unit_cost,
        )
        task.result = VideoRecord(video_id, task_id, float(duration), born, kind, model)
        self.store.add(task)
        return task.result

    def render(self, task: TaskRecord, phase: Phase) -> dict[str, Any]:
        return task_object(task, phase, self.base_url)

    def render_now(self, task: TaskRecord) -> dict[str, Any]:
        return self.render(task, task.phase_at(self.clock.time()))

    def find_video(self, video_id: str, field: str = "video_id") -> VideoRecord:
        """A video that exists now and is not purged; a 1201 :class:`ApiError` naming
        ``field`` otherwise."""
        now = self.clock.time()
        video = self.store.videos.get(video_id)
        if video is None or video.ready_at > now:
            raise ApiError.invalid(f"{field} does not name an existing video")
        if now - video.ready_at > PURGE_AFTER:
            raise ApiError.invalid(f"{field} names a video older than 30 days; it was purged")
        return video

    def video_at(self, url: str, field: str) -> VideoRecord | None:
        """The video one of this emulator's media URLs serves (a 1201 naming ``field`` if it
        is gone); ``None`` for any other URL (a watermarked copy's included)."""
        prefix = self.base_url + VIDEO_MEDIA_DIR
        if not self.base_url or not url.startswith(prefix) or not url.endswith(".mp4"):
            return None
        stem = url[len(prefix) : -len(".mp4")]
        if stem.endswith(".wm"):
            return None
        return self.find_video(stem, field)

    def find_image(self, image_id: str) -> ImageRecord:
        """An image that exists now and is not purged; a 1203 :class:`ApiError` otherwise."""
        now = self.clock.time()
        image = self.store.images.get(image_id)
        if image is None or image.ready_at > now or now - image.ready_at > PURGE_AFTER:
            raise ApiError.not_found("no such image")
        return image

    def _make_results(self, task: TaskRecord, plan: Plan, kind: str) -> None:
        """What a task will show once it succeeds (nothing, if it is to fail). The seeded
        draw of a video's jitter happens even then, so outcomes do not depend on failures."""
        seconds = plan.seconds
        if plan.jitter:
            seconds = round(seconds + self._outcomes.uniform(0.0, plan.jitter), 3)
        if task.failure is not None:
            return
        if task.output == "images":
            task.images = tuple(
                ImageRecord(self.store.new_image_id(), task.task_id, index, task.ends_at)
                for index in range(plan.images)
            )
        else:
            task.result = VideoRecord(
                self.store.new_video_id(), task.task_id, seconds, task.ends_at, kind, plan.model
            )

    def _failure(self, body: dict[str, Any]) -> str | None:
        reason = self._fail_when(dict(body)) if self._fail_when is not None else None
        if reason is None and self._failure_rate and self._outcomes.random() < self._failure_rate:
            reason = RANDOM_FAILURE
        return reason


def _model_of(body: dict[str, Any]) -> str | None:
    """The model a body names (``model_name``, or the legacy ``model``), for 1103 checks."""
    for name in ("model_name", "model"):
        value = body.get(name)
        if isinstance(value, str) and value:
            return value
    return None
