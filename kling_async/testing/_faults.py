"""Planned and random faults: what goes wrong between a client and Kling.

A fault is drawn per request (planned ones first, in the order planned, then the random
source), before authentication, so every kind can hit every route. What each does is in
:class:`Fault`; the server applies them. A planned *refusal* (``KlingEmulator.refuse``) is a
fault too: any documented business code, answered with its HTTP status (kling-api.md 7) in
place of handling, so nothing is created — the way to produce codes with no documented
trigger (1000, 1300) or to refuse a route the account rules never refuse.
"""

from __future__ import annotations

import enum
import json
import random
from collections.abc import Iterable
from typing import Any, Literal

import attrs
from aiohttp import web

from kling_async.testing._replies import ApiError, Reply, encode, failure

__all__ = [
    "DEFAULT_RANDOM_KINDS",
    "Drawn",
    "Fault",
    "FaultPlan",
    "Route",
    "RouteOrAny",
    "refusal",
    "tampered",
]

Route = Literal["create", "get", "list", "account"]
RouteOrAny = Literal["create", "get", "list", "account", "any"]


class Fault(enum.Enum):
    """Ways an answer can go wrong. For creates, "the task is created" means the caller paid."""

    GATEWAY_HTML_502 = "gateway_html_502"
    """A gateway's text/html 502 page, no JSON; nothing is created."""
    SERVER_5000 = "server_5000"
    """HTTP 500 ``{"code": 5000, ...}``; nothing is created."""
    SERVER_5001 = "server_5001"
    """HTTP 503 ``{"code": 5001, ...}``; nothing is created."""
    SERVER_5002 = "server_5002"
    """HTTP 504 ``{"code": 5002, ...}``; nothing is created."""
    DROP_BEFORE = "drop_before"
    """The connection is closed before the request is handled; nothing is created."""
    DROP_AFTER_CREATE = "drop_after_create"
    """The request is handled (a create creates its task), then the connection is closed
    without an answer: the lost-answer case."""
    SLOW = "slow"
    """The request is handled (a create creates its task), then the answer waits ``delay`` real
    seconds, so a client's read timeout can fire while the task exists."""
    GATEWAY_502_AFTER_CREATE = "gateway_502_after_create"
    """The request is handled (a create creates its task), then a gateway's text/html 502
    replaces the answer: a 5xx that hides a paid task (an upstream timing out, say)."""
    NONZERO_CODE_200 = "nonzero_code_200"
    """HTTP 200 carrying ``{"code": 5000, ...}``; nothing is created."""
    TRUNCATED_JSON = "truncated_json"
    """HTTP 200 whose JSON is cut short; a create creates its task first."""
    MALFORMED_JSON = "malformed_json"
    """HTTP 200 whose body is not JSON at all; a create creates its task first."""
    SPURIOUS_1303 = "spurious_1303"
    """HTTP 429 ``{"code": 1303, ...}`` though the account has free slots (a burst of another
    process's, a counter that lags); nothing is created."""
    UNKNOWN_STATUS = "unknown_status"
    """Task objects in the answer carry ``task_status: "queued"``, a value not in the enum."""
    EXTRA_FIELDS = "extra_fields"
    """Unknown keys at envelope and task level (and a nullable ``task_result`` on create)."""


# SLOW waits real seconds; the after-create 502 and the spurious 1303 came later and are left
# out so that seeded random plans written before them draw the same faults.
DEFAULT_RANDOM_KINDS: tuple[Fault, ...] = tuple(
    f
    for f in Fault
    if f not in (Fault.SLOW, Fault.GATEWAY_502_AFTER_CREATE, Fault.SPURIOUS_1303)
)


@attrs.frozen
class Drawn:
    """A fault chosen for one request: a :class:`Fault`, or (``fault=None``) the refusal
    ``code`` with ``message``."""

    fault: Fault | None
    delay: float = 0.0
    code: int | None = None
    message: str | None = None


@attrs.define
class _Planned:
    fault: Fault | None
    route: RouteOrAny
    remaining: int | None  # None: forever
    delay: float
    code: int | None = None
    message: str | None = None


@attrs.frozen
class _RandomSource:
    rate: float
    kinds: tuple[Fault, ...]
    route: RouteOrAny
    delay: float
    rng: random.Random


def _matches(wanted: RouteOrAny, route: Route) -> bool:
    return wanted in ("any", route)


class FaultPlan:
    """The faults the next requests will meet."""

    def __init__(self) -> None:
        self._planned: list[_Planned] = []
        self._random: dict[RouteOrAny, _RandomSource] = {}  # by route, or "any"

    def plan(self, fault: Fault, route: RouteOrAny, times: int | None, delay: float) -> None:
        _check_route(route)
        if times is not None and times < 1:
            raise ValueError("times must be >= 1, or None for forever")
        if delay < 0:
            raise ValueError("delay must be >= 0")
        self._planned.append(_Planned(Fault(fault), route, times, delay))

    def refuse(self, code: int, route: RouteOrAny, times: int | None, message: str | None) -> None:
        _check_route(route)
        ApiError.documented(code)  # a ValueError for a code not in the table
        if times is not None and times < 1:
            raise ValueError("times must be >= 1, or None for forever")
        self._planned.append(_Planned(None, route, times, 0.0, code, message))

    def randomly(
        self, rate: float, kinds: Iterable[Fault], seed: int, route: RouteOrAny, delay: float
    ) -> None:
        _check_route(route)
        chosen = tuple(Fault(k) for k in kinds)
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be in [0, 1]")
        if not chosen:
            raise ValueError("kinds must name at least one Fault")
        source = _RandomSource(rate, chosen, route, delay, random.Random(seed))
        if route == "any":
            self._random = {"any": source}
        else:  # a route of its own: 18 % of creates faulty and 5 % of GETs, say
            self._random[route] = source

    def clear(self) -> None:
        self._planned.clear()
        self._random = {}

    def draw(self, route: Route) -> Drawn | None:
        """The fault for one request on ``route``, using it up."""
        for entry in self._planned:
            if _matches(entry.route, route):
                if entry.remaining is not None:
                    entry.remaining -= 1
                    if entry.remaining == 0:
                        self._planned.remove(entry)
                return Drawn(entry.fault, entry.delay, entry.code, entry.message)
        source = self._random.get(route) or self._random.get("any")
        if source is not None and source.rng.random() < source.rate:
            return Drawn(source.rng.choice(source.kinds), source.delay)
        return None


def _check_route(route: str) -> None:
    if route not in ("create", "get", "list", "account", "any"):
        raise ValueError(
            f"route must be 'create', 'get', 'list', 'account' or 'any', got {route!r}"
        )


_GATEWAY_PAGE = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
_SERVER_ERRORS = {
    Fault.SERVER_5000: ApiError(500, 5000, "Internal server error"),
    Fault.SERVER_5001: ApiError(503, 5001, "Service temporarily unavailable"),
    Fault.SERVER_5002: ApiError(504, 5002, "Server internal timeout, please try again later"),
    Fault.NONZERO_CODE_200: ApiError(200, 5000, "Internal server error"),
    Fault.SPURIOUS_1303: ApiError(429, 1303, "parallel task over resource pack limit"),
}


def refusal(fault: Fault | None, drawn: Drawn | None = None) -> web.Response | None:
    """The answer for faults that replace handling altogether (nothing is created)."""
    if drawn is not None and drawn.code is not None:
        return failure(ApiError.documented(drawn.code, drawn.message)).response()
    if fault is Fault.GATEWAY_HTML_502:
        return web.Response(status=502, text=_GATEWAY_PAGE, content_type="text/html")
    error = _SERVER_ERRORS.get(fault) if fault is not None else None
    return None if error is None else failure(error).response()


def tampered(fault: Fault | None, reply: Reply, route: Route) -> web.Response:
    """``reply`` as written, spoilt by ``fault`` when it is one that spoils bodies."""
    if fault is Fault.GATEWAY_502_AFTER_CREATE:
        return web.Response(status=502, text=_GATEWAY_PAGE, content_type="text/html")
    if fault is Fault.TRUNCATED_JSON:
        body = encode(reply.payload)
        return _raw(reply, body[: len(body) // 2])
    if fault is Fault.MALFORMED_JSON:
        return _raw(reply, repr(reply.payload).encode())  # Python repr: single quotes, True
    if fault not in (Fault.UNKNOWN_STATUS, Fault.EXTRA_FIELDS):
        return reply.response()
    payload: dict[str, Any] = json.loads(encode(reply.payload))  # a deep copy
    tasks = [t for t in _listed(payload.get("data")) if isinstance(t, dict)]
    if fault is Fault.UNKNOWN_STATUS:
        for task in tasks:
            task["task_status"] = "queued"
    else:
        payload["trace"] = {"region": "emulated", "hops": 1}
        for task in tasks:
            task["task_progress"] = 42
            task["model_name"] = "kling-v1-6"
            task.setdefault("task_info", {})["source"] = "api"
            if route == "create":
                task["task_result"] = {"images": [], "videos": None}
    return Reply(reply.status, payload, reply.headers).response()


def _listed(data: object) -> list[object]:
    if isinstance(data, list):
        return data
    return [data] if isinstance(data, dict) else []


def _raw(reply: Reply, body: bytes) -> web.Response:
    return web.Response(
        status=reply.status, body=body, content_type="application/json", headers=reply.headers
    )
