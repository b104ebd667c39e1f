"""The emulator's command-line flags, generated from one table of its knobs.

:data:`KNOBS` has one row per keyword of :class:`KlingEmulator` that a command line can express:
its flag, how the text becomes the value, and the help. :func:`add_arguments` mounts every row
on a parser (``python -m kling_async.testing`` and ``kling-async emulator`` both call it) and
:func:`emulator_kwargs` turns what was parsed back into keywords. A flag left out passes
nothing, so the emulator's own default applies, and the help shows that default as the
constructor's signature has it: flags and knobs cannot drift. A knob no command line can
express (a Python object) is in :data:`NOT_ON_THE_COMMAND_LINE` with the reason;
``tests/emulator/test_flags.py`` fails when a knob is in neither.

The argparse types are the emulator's own (a bad value exits 2 naming the flag before anything
is served): the emulator stands alone, it borrows nothing from the CLI.
"""

from __future__ import annotations

import argparse
import inspect
import re
import typing
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from kling_async._argtypes import fraction, integer, non_negative, positive
from kling_async.testing._durations import Durations
from kling_async.testing._emulator import KlingEmulator
from kling_async.testing._limits import PACKS, SlotLimit

__all__ = ["KNOBS", "NOT_ON_THE_COMMAND_LINE", "Knob", "add_arguments", "emulator_kwargs"]

#: Knobs of ``KlingEmulator`` with no flag, and why.
NOT_ON_THE_COMMAND_LINE: Mapping[str, str] = {
    "clock": "a Clock object; --time-scale builds the ScaledClock",
    "token_clock": "a Clock object; served from a command line, tokens meet real time",
    "fail_when": "a Python callable; --failure-rate fails a share of tasks instead",
}


def _per_pack(text: str, value: Callable[[str], float]) -> dict[str, float]:
    """``video=2,image=1``: one value per resource-pack type."""
    pairs: dict[str, float] = {}
    for item in text.split(","):
        pack, sep, number = item.partition("=")
        pack = pack.strip()
        if not sep or pack not in PACKS:
            raise argparse.ArgumentTypeError(
                f"want PACK=VALUE pairs with PACK among {', '.join(PACKS)}, got {text!r}"
            )
        pairs[pack] = value(number.strip())
    return pairs


def slot_limit(text: str) -> SlotLimit:
    """``N`` (each pack's pool), or ``video=N,image=N,try-on=N`` (the pools named)."""
    if "=" not in text:
        return integer(1)(text)
    return {pack: int(n) for pack, n in _per_pack(text, integer(0)).items()}


def packs(text: str) -> dict[str, float]:
    return _per_pack(text, non_negative)


def durations(text: str) -> Durations:
    """``QUEUED,RUNNING`` seconds, the same for every task."""
    queued, sep, running = text.partition(",")
    if not sep:
        raise argparse.ArgumentTypeError(f"want QUEUED,RUNNING seconds, got {text!r}")
    return Durations(non_negative(queued), non_negative(running))


def regex(text: str) -> str:
    try:
        re.compile(text)
    except re.error as exc:
        raise argparse.ArgumentTypeError(f"not a regular expression: {text!r} ({exc})") from None
    return text


port = integer(0, 65535)


@attrs.frozen
class Knob:
    """One keyword of ``KlingEmulator`` on the command line.

    ``many``: the flag repeats, its values make a tuple; ``switch``: ``--x`` / ``--no-x``;
    ``default``: the help's words for the default, when the signature's value reads badly. A
    knob annotated with a ``Literal`` takes exactly its values (``choices``).
    """

    name: str
    flag: str
    help: str
    type: Callable[[str], Any] | None = None
    metavar: str | None = None
    many: bool = False
    switch: bool = False
    default: str | None = None

    @property
    def dest(self) -> str:
        return "knob_" + self.name  # its own namespace: no clash with a host CLI's flags


KNOBS: tuple[Knob, ...] = (
    Knob("host", "--host", "address to bind", metavar="HOST"),
    Knob("port", "--port", "port to bind (0: any free)", type=port, metavar="PORT"),
    Knob(
        "time_scale",
        "--time-scale",
        "emulated seconds per real second for task durations (100 makes a 320 s extend "
        "take 3.2 s); tokens are judged on real time, as Kling judges them",
        type=positive,
        metavar="X",
    ),
    Knob("seed", "--seed", "seed for ids, durations, failures", type=int, metavar="N"),
    Knob("access_key", "--access-key", "the account's AccessKey (JWT iss)", metavar="AK"),
    Knob("secret_key", "--secret-key", "the account's SecretKey (signs JWTs)", metavar="SK"),
    Knob("api_keys", "--api-key", "a static console API key", metavar="KEY", many=True),
    Knob("relay_keys", "--relay-key", "a relay key (/kling routes)", metavar="KEY", many=True),
    Knob(
        "durations",
        "--durations",
        "every task's queued and running seconds",
        type=durations,
        metavar="QUEUED,RUNNING",
        default="each kind's typical time, an extend 5,315",
    ),
    Knob(
        "failure_rate",
        "--failure-rate",
        "share of tasks that end failed",
        type=fraction,
        metavar="P",
    ),
    Knob(
        "slot_limit",
        "--slots",
        "parallel task slots of each pack pool, or per pool: video=N,image=N,try-on=N",
        type=slot_limit,
        metavar="N",
        default="unlimited",
    ),
    Knob(
        "balance_units",
        "--balance",
        "units, one balance for every kind",
        type=non_negative,
        metavar="UNITS",
        default="unlimited",
    ),
    Knob(
        "packs",
        "--packs",
        "units per resource-pack type, instead of --balance",
        type=packs,
        metavar="video=U,image=U,try-on=U",
        default="none",
    ),
    Knob("unit_cost", "--unit-cost", "units one task costs", type=non_negative, metavar="U"),
    Knob(
        "rate_limit",
        "--rate-limit",
        "creates per clock second before 1302",
        type=positive,
        metavar="N",
        default="none",
    ),
    Knob(
        "retry_after",
        "--retry-after",
        "Retry-After seconds sent with 1302/1303",
        type=non_negative,
        metavar="S",
        default="none",
    ),
    Knob(
        "require_relay_parent",
        "--require-relay-parent",
        "the relay's create wants the parent task_id",
        switch=True,
    ),
    Knob(
        "relay_list_route",
        "--relay-list-route",
        "the relay lists tasks (off: its list route answers 404/1203)",
        switch=True,
    ),
    Knob(
        "webhook_secret",
        "--webhook-secret",
        "whsec_... to sign callbacks (repeat: a rotation, one signature each)",
        metavar="SECRET",
        many=True,
        default="unsigned",
    ),
    Knob(
        "account_state",
        "--account-state",
        "refuse every create: arrears 1101, abnormal 1100",
    ),
    Knob(
        "forbidden",
        "--forbid",
        "a kind or model the account may not use (1103)",
        metavar="KIND_OR_MODEL",
        many=True,
        default="none",
    ),
    Knob(
        "blocked_prompts",
        "--block-prompt",
        "a regex of prompts refused with 1301",
        type=regex,
        metavar="REGEX",
        many=True,
        default="none",
    ),
    Knob(
        "allowed_ips",
        "--allow-ip",
        "an address allowed to call (others: 1304)",
        metavar="IP",
        many=True,
        default="any",
    ),
    Knob("list_order", "--list-order", "the order of list answers (the docs are silent)"),
    Knob(
        "duplicate_external_id",
        "--duplicate-external-id",
        "a create reusing an external_task_id: refused with 1201, or accepted",
    ),
    Knob(
        "relay_external_task_id",
        "--relay-external-task-id",
        "the relay keeps an external_task_id (off: ignored as an unknown field)",
        switch=True,
    ),
    Knob(
        "sign_legacy_callbacks",
        "--sign-legacy-callbacks",
        "sign legacy callbacks when a secret is set",
        switch=True,
    ),
    Knob(
        "submitted_callback",
        "--submitted-callback",
        "a callback for 'submitted' at create time",
        switch=True,
    ),
    Knob(
        "check_images",
        "--check-images",
        "inspect image bytes: refuse with 1201 at create, or fail the task",
        default="not inspected",
    ),
)


def _signature_default(name: str) -> object:
    return inspect.signature(KlingEmulator.__init__).parameters[name].default


def choices(name: str) -> tuple[str, ...] | None:
    """The values of a knob annotated ``Literal[...]`` (or ``Literal[...] | None``), else None."""
    hint = typing.get_type_hints(KlingEmulator.__init__)[name]
    if typing.get_origin(hint) is not typing.Literal:
        literals = [a for a in typing.get_args(hint) if typing.get_origin(a) is typing.Literal]
        if len(literals) != 1:
            return None
        hint = literals[0]
    return tuple(str(value) for value in typing.get_args(hint))


def _help(knob: Knob) -> str:
    default = knob.default
    if default is None:
        value = _signature_default(knob.name)
        if knob.switch:
            default = "on" if value else "off"
        elif isinstance(value, tuple):
            default = " ".join(value)
        else:
            default = str(value)
    text = f"{knob.help} (default {default})"
    return text.replace("%", "%%")  # argparse formats help with %


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per row of :data:`KNOBS`; a flag not given sets nothing."""
    for knob in KNOBS:
        options: dict[str, Any] = {"dest": knob.dest, "default": argparse.SUPPRESS}
        if knob.switch:
            options["action"] = argparse.BooleanOptionalAction
        else:
            options |= {"type": knob.type, "metavar": knob.metavar, "choices": choices(knob.name)}
            if knob.many:
                options["action"] = "append"
        parser.add_argument(knob.flag, help=_help(knob), **options)


def emulator_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """``KlingEmulator`` keywords for the flags that were given."""
    kwargs: dict[str, Any] = {}
    for knob in KNOBS:
        if hasattr(args, knob.dest):
            value = getattr(args, knob.dest)
            kwargs[knob.name] = tuple(value) if knob.many else value
    return kwargs
