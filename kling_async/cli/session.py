"""What every ``kling-async`` command shares: exit codes, the client (or the emulator), Ctrl-C.

Exit codes (also in ``kling-async --help``):

==== =====================================================================================
0    everything asked for succeeded
1    the command ran, but some tasks failed, were rejected, timed out, could not be found,
     were not sent, or did not download
2    usage or input error: bad flags, a bad input file (nothing was sent), a file or folder
     that cannot be used, a journal in use, no credentials, a file that is not a journal,
     rich not installed
3    the API refused: credentials, account (balance, permissions), policy, or request
4    the API could not be reached or gave no usable answer (network, 5xx, garbled JSON, a
     create whose answer was lost)
130  interrupted (Ctrl-C, or stdout closed under it); a batch resumes when run again
==== =====================================================================================
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import attrs

from ..client import KlingClient
from ..clock import Clock, ScaledClock
from ..errors import (
    AmbiguousSubmitError,
    APIError,
    ConfigurationError,
    DatabaseUnavailableError,
    KlingError,
    RequestValidationError,
    ResponseFormatError,
    ServerError,
    TaskFailedError,
    TaskTimeoutError,
    TransportError,
)
from ..journal import JournalError
from ..requests import CreateRequest
from .live import Reach
from .output import Output

__all__ = [
    "EXIT_DATABASE",
    "EXIT_INCOMPLETE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "Context",
    "UsageError",
    "exit_code_for",
    "open_client",
    "run_command",
]

EXIT_OK = 0
EXIT_INCOMPLETE = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_UNREACHABLE = 4
#: The shared journal's database stayed unreachable past the outage bound: the worker stopped,
#: nothing lost; running the same command again resumes.
EXIT_DATABASE = 5
EXIT_INTERRUPTED = 130

DEFAULT_EMULATOR_SCALE = 60.0

NO_CREDENTIALS = (
    "no Kling credentials. Set KLING_ACCESS_KEY and KLING_SECRET_KEY (the official API's "
    "AccessKey/SecretKey), or KLING_API_KEY (a console API key, or a relay's key together with "
    "KLING_BASE_URL=https://<relay>/kling); or pass --access-key and --secret-key, or --api-key. "
    "To try kling-async without an account, add --emulator."
)


class UsageError(Exception):
    """A problem with what the user asked for: exit 2 with this message."""


@attrs.define
class Context:
    """One command's arguments, output and interruption state."""

    args: argparse.Namespace
    out: Output
    interrupted: bool = False
    #: stdout was closed under the command (its reader went away): it stopped, exit 130.
    pipe_closed: bool = False
    #: Whether the API answers: failed attempts are shown while they last.
    reach: Reach = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.reach = Reach(self.out, time.monotonic)

    def by_a_person(self) -> bool:
        """Whether the command was stopped by Ctrl-C (not by its stdout going away, after
        which it goes quietly)."""
        return self.interrupted and not self.pipe_closed


def exit_code_for(error: BaseException) -> int:
    """The exit code for an error that ended a command."""
    if isinstance(error, DatabaseUnavailableError):
        return EXIT_DATABASE
    if isinstance(error, (UsageError, ConfigurationError, RequestValidationError, JournalError)):
        return EXIT_USAGE
    if isinstance(error, (TaskFailedError, TaskTimeoutError)):
        return EXIT_INCOMPLETE
    if isinstance(error, (ServerError, TransportError, ResponseFormatError, AmbiguousSubmitError)):
        return EXIT_UNREACHABLE
    if isinstance(error, APIError):
        return EXIT_REFUSED
    return EXIT_UNREACHABLE


def describe(error: BaseException, reach: Reach | None = None) -> str:
    """A one-line message for an error that ended a command."""
    if isinstance(error, AmbiguousSubmitError):
        return (
            f"{error} (external_task_id={error.external_task_id}); the task may exist: "
            "look for it with `kling-async get` before creating it again"
        )
    message = str(error) or type(error).__name__
    if isinstance(error, DatabaseUnavailableError):
        return f"{message}; stopped, nothing lost: run the same command again to resume"
    unreachable = isinstance(error, (TransportError, ServerError, ResponseFormatError))
    if unreachable and reach is not None and reach.failing_since is not None and reach.base_url:
        message += f"; {reach.base_url} {reach.tried()}"  # where, and for how long
    return message


def _clock_setting(args: argparse.Namespace, flag: str, variable: str) -> float | None:
    """A clock flag, else its ``KLING_*`` variable (what ``kling-async emulator`` prints)."""
    value = getattr(args, flag)
    if value is not None or args.emulator:
        return float(value) if value is not None else None
    text = os.environ.get(variable, "").strip()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        raise UsageError(f"{variable}={text!r} is not a number") from None
    if not (math.isfinite(number) and number > 0):
        raise UsageError(f"{variable}={text!r} must be a number > 0")
    return number


def _scaled_clock(args: argparse.Namespace, default: float | None) -> ScaledClock | None:
    scale = _clock_setting(args, "time_scale", "KLING_TIME_SCALE")
    origin = _clock_setting(args, "time_origin", "KLING_TIME_ORIGIN")
    if origin is not None and scale is None:
        raise UsageError("--time-origin (KLING_TIME_ORIGIN) needs --time-scale (KLING_TIME_SCALE)")
    scale = scale if scale is not None else default
    if scale is None or scale == 1.0:
        return None
    if origin is None:
        return ScaledClock(scale)
    return ScaledClock.following(scale, origin)


def client_options(args: argparse.Namespace) -> dict[str, Any]:
    """KlingClient keyword arguments from the flags, else the KLING_* environment."""
    env = os.environ.get
    access = args.access_key or env("KLING_ACCESS_KEY") or None
    secret = args.secret_key or env("KLING_SECRET_KEY") or None
    explicit_pair = args.access_key is not None or args.secret_key is not None
    api_key = args.api_key or (None if explicit_pair else env("KLING_API_KEY") or None)
    options: dict[str, Any] = {}
    if args.base_url:
        options["base_url"] = args.base_url
    if api_key:
        if args.access_key or args.secret_key:
            raise UsageError("give either --api-key or --access-key/--secret-key, not both")
        options["api_key"] = api_key
    elif access and secret:
        options["access_key"], options["secret_key"] = access, secret
    elif access:
        raise UsageError(
            "KLING_SECRET_KEY (or --secret-key) is not set: an access key needs its secret key"
        )
    elif secret:
        raise UsageError(
            "KLING_ACCESS_KEY (or --access-key) is not set: a secret key needs its access key"
        )
    else:
        raise UsageError(NO_CREDENTIALS)
    return options


def check_credentials(args: argparse.Namespace) -> None:
    """Fail early (exit 2) when a command that needs the API has no way to reach it."""
    if not args.emulator:
        client_options(args)


@contextlib.asynccontextmanager
async def open_client(
    ctx: Context, *, requests: Iterable[CreateRequest] = ()
) -> AsyncIterator[KlingClient]:
    """A client for the command: against an in-process emulator with ``--emulator`` (seeded
    with the videos ``requests`` start from: extends' and lip-syncs'), else the real API."""
    args = ctx.args
    if not args.emulator:
        options = client_options(args)
        clock: Clock | None = _scaled_clock(args, None)
        async with KlingClient(**options, clock=clock, retry=ctx.reach.policy()) as client:
            ctx.reach.base_url = client.base_url
            yield client
        return

    from ..testing import Durations, KlingEmulator

    emu_clock = _scaled_clock(args, DEFAULT_EMULATOR_SCALE) or ScaledClock(1.0)
    emulator = KlingEmulator(
        clock=emu_clock,
        slot_limit=args.emulator_slots or None,
        durations=Durations.random(mean_running=240, spread=60, queued=5, seed=args.emulator_seed),
        failure_rate=args.emulator_failure_rate,
        seed=args.emulator_seed,
    )
    async with emulator as emu:
        seeded: set[str] = set()
        for request in requests:
            video_id = request.parent_video_id
            if video_id is None or video_id in seeded:
                continue
            task_id = getattr(request, "parent_task_id", None)
            seeded.add(video_id)
            if task_id is not None and task_id in emu.tasks:
                task_id = None  # one parent task owns one seeded video here
            emu.add_video(5.0, video_id=video_id, task_id=task_id)
        videos_seeded = f"{len(seeded)} video{'' if len(seeded) == 1 else 's'} seeded"
        ctx.out.note(
            f"emulator at {emu.url} (time x{emu_clock.scale:g}, "
            f"{args.emulator_slots or 'unlimited'} task slots, {videos_seeded})"
        )
        emulated: dict[str, Any] = dict(emu.client_kwargs("jwt"))
        async with KlingClient(**emulated, clock=emu_clock, retry=ctx.reach.policy()) as client:
            ctx.reach.base_url = client.base_url
            yield client


def run_command(ctx: Context, command: Callable[[Context], Awaitable[int]]) -> int:
    """Run ``command`` on a fresh event loop. The first Ctrl-C cancels it (it sees
    ``ctx.interrupted`` and may report before returning 130); a second one abandons clean-up.
    stdout closing under it (``| head``) stops it the same way, quietly."""

    async def guarded() -> int:
        loop = asyncio.get_running_loop()
        # The command runs as a task of its own, so that stopping it never cancels this one
        # (a command that returns before it sees the cancellation still returns its code).
        work = asyncio.ensure_future(command(ctx))
        installed = False

        def stop() -> None:
            ctx.interrupted = True
            work.cancel()

        def on_sigint() -> None:
            if ctx.interrupted:
                loop.remove_signal_handler(signal.SIGINT)  # the next one raises at once
            else:
                ctx.out.note("interrupted: stopping (press Ctrl-C again to abandon clean-up)")
            stop()

        def on_closed() -> None:
            ctx.pipe_closed = True
            stop()

        ctx.out.on_closed = on_closed
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGINT, on_sigint)
            installed = True
        try:
            code = await work
        except asyncio.CancelledError:
            if ctx.interrupted:
                return EXIT_INTERRUPTED
            raise
        except (KlingError, UsageError) as error:
            code = exit_code_for(error)
            message = describe(error, ctx.reach)
            ctx.out.error(message, exit_code=code, error_type=type(error).__name__)
            return code
        except OSError as error:  # a file the command reads or writes: name it, no traceback
            ctx.out.error(describe_os_error(error), exit_code=EXIT_USAGE, error_type="OSError")
            return EXIT_USAGE
        finally:
            if installed:
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(signal.SIGINT)
        return EXIT_INTERRUPTED if ctx.pipe_closed else code

    try:
        return asyncio.run(guarded())
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def describe_os_error(error: OSError) -> str:
    """``PATH: what is wrong`` for a file-system error."""
    where = error.filename if error.filename is not None else None
    reason = error.strerror or str(error)
    return f"{where}: {reason}" if where is not None else reason
