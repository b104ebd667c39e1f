"""``KlingEmulator``: the Kling API on a real socket, for testing apps without the real service."""

from __future__ import annotations

import types
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, TypedDict

import attrs
from aiohttp import web

from kling_async.clock import Clock, ScaledClock
from kling_async.clock import token_clock as tokens_on
from kling_async.testing._auth import Credentials
from kling_async.testing._callbacks import CallbackRecord
from kling_async.testing._core import EmulatorCore, EmulatorStats, FailWhen, Readings
from kling_async.testing._durations import Durations
from kling_async.testing._faults import DEFAULT_RANDOM_KINDS, Fault, FaultPlan, RouteOrAny
from kling_async.testing._images import ImageCheck
from kling_async.testing._limits import AccountLimits, SlotLimit
from kling_async.testing._policy import AccountPolicy, AccountState
from kling_async.testing._server import EmulatorServer
from kling_async.testing._tasks import TaskRecord
from kling_async.testing._wire import media_path
from kling_async.webhooks.signing import WebhookSecret

__all__ = ["KlingEmulator", "SeedVideo"]

# Long enough that PyJWT does not warn about a short HMAC key when clients sign with it.
DEFAULT_SECRET_KEY = "emu-sk-0001-not-a-secret-emulator-only"


@attrs.frozen
class SeedVideo:
    """A video registered with :meth:`KlingEmulator.add_video`, ready to be extended."""

    video_id: str
    task_id: str
    duration: float
    url: str


class ClientKwargs(TypedDict, total=False):
    """What :meth:`KlingEmulator.client_kwargs` gives: typed, so ``KlingClient(**kwargs)``
    type-checks."""

    base_url: str
    access_key: str
    secret_key: str
    api_key: str


class KlingEmulator:
    """An emulated Kling account served over HTTP on ``host:port`` (port 0: any free port).

    Both flavours are mounted: official routes under ``/v1`` (JWT from ``access_key`` and
    ``secret_key``, or a static ``api_keys`` entry) and relay routes under ``/kling/v1``
    (``relay_keys``). Tasks live on ``clock`` (default ``ScaledClock(time_scale)``): pass a
    ``FakeClock`` to step through a task's life, or share a ``ScaledClock`` with a client.
    A JWT's ``exp``/``nbf`` are judged on ``token_clock``: by default real time under a
    ``ScaledClock`` (Kling checks tokens on real time; the scale is for task durations, so a
    token minted on real time lives its 30 minutes at any ``time_scale``), and ``clock``
    itself when that is a ``FakeClock``; the ``Date`` header shows it too.

    Every kind of kling-api.md 5.1 the client knows is served: text2video, image2video,
    video-extend, lip-sync, image-generation and virtual-try-on (``emu.tasks[id].kind``). By
    default (``durations=None``) each kind takes its typical time (:meth:`Durations.typical`:
    an extend 5 s queued + 315 s running).

    ``async with KlingEmulator() as emu:`` starts and stops it; see the package docs for the
    knobs (limits, faults, callbacks) and what it records (``stats``, ``tasks``, ``callbacks``).

    Relay behaviours the relay docs leave open, as knobs: ``require_relay_parent`` (the
    relay's create wants the parent ``task_id``) and ``relay_list_route`` — the relay docs
    document no list query, so ``False`` serves a relay whose list (and ``?external_task_id=``)
    route answers 404/1203 like an unknown route; ``True`` (the default) lists as the official
    API does, newest first, with ``task_info.parent_video``.

    Account rules (docs/emulator-rules.md lists every rule and its section): ``slot_limit``
    bounds each resource-pack pool (video, image, try-on) apart, or takes a mapping per pack;
    ``balance_units`` is one balance for all kinds, ``packs`` (units per pack type) one per
    type; ``GET /account/costs`` shows them. ``account_state`` ("arrears" 1101, "abnormal"
    1100), ``forbidden`` (kinds or models: 1103), ``blocked_prompts`` (regexes: 1301) and
    ``allowed_ips`` (1304) refuse as :mod:`._policy` says; :meth:`refuse` plans any documented
    code. ``webhook_secret`` may be several secrets (a rotation: one signature each).

    Where the docs are silent, a knob plays each reading; the default is the one safest for
    the user or the one the docs lean to: ``list_order`` ("newest" first, or "oldest");
    ``duplicate_external_id`` ("refuse" with 1201, so a re-sent create cannot pay twice, or
    "accept"); ``relay_external_task_id`` (``False``: the relay ignores an
    ``external_task_id`` as an unknown field, as its documented body has none; ``True``:
    keeps it like the official API); ``sign_legacy_callbacks`` (sign legacy
    callbacks when a secret is set, or not: 6.3 ties signing to the new standard);
    ``submitted_callback`` (a callback for ``submitted`` at create time, or none);
    ``check_images`` (``None``: bytes not inspected; "refuse": 1201 at create; "fail": the task
    fails "Image pixel is invalid").
    """

    def __init__(
        self,
        *,
        access_key: str = "emu-ak-0001",
        secret_key: str = DEFAULT_SECRET_KEY,
        api_keys: Iterable[str] = ("emu-static-key",),
        relay_keys: Iterable[str] = ("sk-emu-relay",),
        clock: Clock | None = None,
        time_scale: float = 1.0,
        token_clock: Clock | None = None,
        durations: Durations | None = None,
        failure_rate: float = 0.0,
        fail_when: FailWhen | None = None,
        slot_limit: SlotLimit = None,
        balance_units: float | None = None,
        packs: Mapping[str, float] | None = None,
        unit_cost: float = 1.0,
        rate_limit: float | None = None,
        retry_after: float | None = None,
        require_relay_parent: bool = True,
        relay_list_route: bool = True,
        webhook_secret: str | Sequence[str] | None = None,
        account_state: AccountState = "ok",
        forbidden: Iterable[str] = (),
        blocked_prompts: Iterable[str] = (),
        allowed_ips: Iterable[str] | None = None,
        list_order: Literal["newest", "oldest"] = "newest",
        duplicate_external_id: Literal["refuse", "accept"] = "refuse",
        relay_external_task_id: bool = False,
        sign_legacy_callbacks: bool = True,
        submitted_callback: bool = True,
        check_images: ImageCheck | None = None,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.clock: Clock = clock if clock is not None else ScaledClock(time_scale)
        self.token_clock: Clock = token_clock if token_clock is not None else tokens_on(self.clock)
        self.credentials = Credentials(access_key, secret_key, tuple(api_keys), tuple(relay_keys))
        limits = AccountLimits(
            slot_limit=slot_limit,
            balance_units=balance_units,
            unit_cost=unit_cost,
            rate_limit=rate_limit,
            retry_after=retry_after,
            packs=packs,
        )
        secrets = [webhook_secret] if isinstance(webhook_secret, str) else webhook_secret or []
        self._core = EmulatorCore(
            clock=self.clock,
            durations=durations if durations is not None else Durations.typical(),
            failure_rate=failure_rate,
            fail_when=fail_when,
            limits=limits,
            require_relay_parent=require_relay_parent,
            webhook_secret=tuple(WebhookSecret(s) for s in secrets if s) or None,
            seed=seed,
            policy=AccountPolicy(
                account_state=account_state,
                forbidden=forbidden,
                blocked_prompts=blocked_prompts,
                allowed_ips=allowed_ips,
            ),
            readings=Readings(
                list_order=list_order,
                duplicate_external_id=duplicate_external_id,
                relay_external_task_id=relay_external_task_id,
                check_images=check_images,
            ),
            sign_callbacks=sign_legacy_callbacks,
            submitted_callback=submitted_callback,
        )
        self._faults = FaultPlan()
        self._relay_list_route = relay_list_route
        self._host, self._port = host, port
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    # -- life -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the socket and start serving and delivering callbacks."""
        if self._runner is not None:
            raise RuntimeError("the emulator is already running")
        server = EmulatorServer(
            self._core,
            self.credentials,
            self._faults,
            token_clock=self.token_clock,
            relay_list_route=self._relay_list_route,
        )
        app = server.application()
        # A short shutdown_timeout: handlers still sleeping in a SLOW fault are cut off.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.25)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self._url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        self._core.base_url = self._url
        await self._core.callbacks.start()

    async def close(self) -> None:
        """Stop serving, cancel background work and close the callback session. Idempotent."""
        runner, self._runner = self._runner, None
        await self._core.callbacks.close()
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> KlingEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- where and who ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The official-flavour base URL, e.g. ``http://127.0.0.1:54321``."""
        if self._url is None:
            raise RuntimeError("the emulator has not been started")
        return self._url

    @property
    def relay_url(self) -> str:
        """The relay-flavour base URL: ``url + "/kling"``."""
        return self.url + "/kling"

    def client_kwargs(self, flavour: Literal["jwt", "key", "relay"] = "jwt") -> ClientKwargs:
        """Keyword arguments for ``KlingClient``: AK/SK (``jwt``), a static key (``key``), or
        the relay's base URL and key (``relay``)."""
        creds = self.credentials
        if flavour == "jwt":
            return {
                "base_url": self.url,
                "access_key": creds.access_key,
                "secret_key": creds.secret_key,
            }
        if flavour == "key":
            return {"base_url": self.url, "api_key": _first(creds.api_keys, "api_keys")}
        if flavour == "relay":
            return {"base_url": self.relay_url, "api_key": _first(creds.relay_keys, "relay_keys")}
        raise ValueError(f"flavour must be 'jwt', 'key' or 'relay', got {flavour!r}")

    # -- setting the scene ------------------------------------------------------------------

    def add_video(
        self,
        duration: float = 5.0,
        *,
        video_id: str | None = None,
        task_id: str | None = None,
        age: float = 0.0,
        kind: str = "text2video",
        model: str = "kling-v1",
    ) -> SeedVideo:
        """Register a finished task of ``kind`` (default text2video) owning one video of
        ``duration`` seconds made by ``model``, generated ``age`` clock seconds ago (older than
        30 days: purged, not extendable). Only text2video, image2video and video-extend
        videos of kling-v1, kling-v1-5 or kling-v1-6 can be extended (kling-api.md 3.1)."""
        base_url = self.url  # before registering anything: the URL needs a running server
        video = self._core.seed_video(duration, video_id, task_id, age, kind, model)
        return SeedVideo(
            video.video_id, video.task_id, video.duration, base_url + media_path(video.video_id)
        )

    def fault(
        self,
        fault: Fault,
        *,
        route: RouteOrAny = "create",
        times: int | None = 1,
        delay: float = 0.0,
    ) -> None:
        """Make the next ``times`` requests on ``route`` (``None``: all of them) meet ``fault``.
        ``delay`` is the real-time wait of :attr:`Fault.SLOW`."""
        self._faults.plan(fault, route, times, delay)

    def random_faults(
        self,
        rate: float,
        kinds: Iterable[Fault] = DEFAULT_RANDOM_KINDS,
        *,
        seed: int = 0,
        route: RouteOrAny = "any",
        delay: float = 0.0,
    ) -> None:
        """Give each request on ``route`` a ``rate`` chance of a fault drawn from ``kinds``
        (seeded). Planned faults come first. ``route="any"`` replaces every earlier random
        setting; a named route replaces only its own, and is drawn from instead of an "any"
        one (so creates and GETs can fail at different rates)."""
        self._faults.randomly(rate, kinds, seed, route, delay)

    def refuse(
        self,
        code: int,
        *,
        route: RouteOrAny = "create",
        times: int | None = 1,
        message: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests on ``route`` with the documented error ``code``
        (any of kling-api.md 7's table, e.g. 1000 or 1300) and its HTTP status, instead of
        handling them: nothing is created. Planned in order with :meth:`fault`."""
        self._faults.refuse(code, route, times, message)

    def clear_faults(self) -> None:
        self._faults.clear()

    # -- what happened ----------------------------------------------------------------------

    @property
    def stats(self) -> EmulatorStats:
        return self._core.stats

    @property
    def slots_in_use(self) -> int:
        """Task slots held by tasks not yet terminal at the clock's current time, in every
        pool (one per task, ``n`` per image generation task)."""
        return self._core.limits.slots_in_use(self.clock.time())

    def pack_slots_in_use(self, pack: str) -> int:
        """Slots held now in one pool: ``"video"``, ``"image"`` or ``"try-on"``."""
        return self._core.limits.slots_in_use(self.clock.time(), pack)

    @property
    def slot_limit(self) -> SlotLimit:
        """The parallel-task limit of each pack pool (``None``: unlimited; a mapping: per
        pack). Settable while running, as when a resource pack is bought or expires: tasks
        already running keep their slots, and creates are refused with 1303 until fewer than
        the new limit are held."""
        return self._core.limits.slot_limit

    @slot_limit.setter
    def slot_limit(self, value: SlotLimit) -> None:
        self._core.limits.set_slot_limit(value)

    @property
    def balance(self) -> float | None:
        """Units left (``None``: unlimited); with ``packs``, the sum over them."""
        limits = self._core.limits
        return sum(limits.packs.values()) if limits.packs is not None else limits.balance

    @property
    def pack_balances(self) -> dict[str, float]:
        """Units left per pack type, when the emulator was given ``packs``; else empty."""
        return dict(self._core.limits.packs or {})

    @property
    def callbacks(self) -> list[CallbackRecord]:
        """Every callback delivery attempt so far, in the order they completed."""
        return self._core.callbacks.records

    async def flush_callbacks(self) -> None:
        """Wait until every callback due by the clock's current time has been attempted."""
        await self._core.callbacks.flush()

    @property
    def tasks(self) -> Mapping[str, TaskRecord]:
        """Every task (seeded parents too) by task id; read-only."""
        return types.MappingProxyType(self._core.store.tasks)

    def task_json(self, task_id: str) -> dict[str, Any]:
        """The task as ``GET .../{task_id}`` would show it now. ``KeyError`` if unknown."""
        return self._core.render_now(self._core.store.tasks[task_id])

    def __repr__(self) -> str:
        where = self._url or "not started"
        return f"<KlingEmulator {where} clock={self.clock!r} tasks={len(self._core.store.tasks)}>"


def _first(keys: tuple[str, ...], name: str) -> str:
    if not keys:
        raise ValueError(f"the emulator was given no {name}")
    return keys[0]
