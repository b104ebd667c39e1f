"""Serve one emulator from the command line until Ctrl-C (or SIGTERM).

``main(argv)`` is ``python -m kling_async.testing``; a CLI can mount the same options as a
subcommand with :func:`add_arguments` (one flag per emulator knob, from the table in
:mod:`._flags`) and :func:`run`. The banner says how to reach it and how
to get onto its clock: a scaled clock drifts from real time, so a client on real time would see
its signed callbacks as stale (its JWTs are fine: they are judged on real time, as Kling does);
the printed ``export`` line (a static key, ``KLING_TIME_SCALE`` and ``KLING_TIME_ORIGIN``) puts
any ``kling-async`` command on it, and ``ScaledClock.following(scale, origin)`` a Python client.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import shlex
import signal
import sys
from collections.abc import Sequence
from typing import TextIO

from kling_async.clock import ScaledClock
from kling_async.testing._emulator import KlingEmulator
from kling_async.testing._flags import add_arguments, emulator_kwargs

__all__ = ["add_arguments", "main", "run"]


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace, *, out: TextIO = sys.stdout) -> int:
    """Serve with the options :func:`add_arguments` defined; returns the exit status."""
    kwargs = emulator_kwargs(args)
    try:
        emulator = KlingEmulator(**kwargs)
    except ValueError as exc:  # knobs that do not go together, e.g. --balance with --packs
        print(f"error: {exc}", file=sys.stderr)
        return 2
    host = emulator._host  # the one it binds: given, or its default
    if not _loopback(host):
        print(
            f"warning: --host {host} makes the emulator reachable from other machines; it "
            "is for testing only, and its published keys let anyone in",
            file=sys.stderr,
        )
    served = True
    with contextlib.suppress(KeyboardInterrupt):  # where signal handlers are unsupported
        served = asyncio.run(_serve(emulator, out))
    return 0 if served else 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kling_async.testing",
        description="Serve a Kling API emulator (official /v1 and relay /kling/v1 routes).",
    )
    add_arguments(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # a bad option: argparse said why (status 2)
        return exit_.code if isinstance(exit_.code, int) else 2
    return run(args)


async def _serve(emulator: KlingEmulator, out: TextIO) -> bool:
    try:
        await emulator.start()
    except OSError as exc:
        print(f"error: cannot serve the emulator: {exc.strerror or exc}", file=sys.stderr)
        return False
    try:
        _banner(emulator, out)
        await _until_stopped()
    finally:
        await emulator.close()
    return True


def _banner(emu: KlingEmulator, out: TextIO) -> None:
    parent = emu.add_video(5.0)
    jwt, key, relay = (emu.client_kwargs(f) for f in ("jwt", "key", "relay"))
    lines = [
        f"Kling emulator listening on {emu.url}  (for testing only, not Kling; Ctrl-C to stop)",
        f"  official  base_url={emu.url}",
        f"            access_key={jwt['access_key']}  secret_key={jwt['secret_key']}",
        f"            api_key={key['api_key']}",
        f"  relay     base_url={relay['base_url']}  api_key={relay['api_key']}",
        f"  a video to extend: video_id={parent.video_id}  task_id={parent.task_id}",
    ]
    env = {"KLING_BASE_URL": emu.url, "KLING_API_KEY": key["api_key"]}
    flags = ["--base-url", emu.url, "--api-key", key["api_key"]]
    python = f"KlingClient(base_url={emu.url!r}, api_key={key['api_key']!r}"
    clock = emu.clock
    if isinstance(clock, ScaledClock) and clock.scale != 1.0 and clock.origin is not None:
        scale, origin = f"{clock.scale:g}", repr(clock.origin)
        lines.append(
            f"  clock     x{scale}: emulated time runs {scale} times as fast as real time, "
            f"since Unix time {origin}"
        )
        env |= {"KLING_TIME_SCALE": scale, "KLING_TIME_ORIGIN": origin}
        flags += ["--time-scale", scale, "--time-origin", origin]
        python += f", clock=ScaledClock.following({scale}, origin={origin})"
    exports = " ".join(f"{name}={shlex.quote(value)}" for name, value in env.items())
    lines += [
        "to use it from another shell, paste:",
        f"  export {exports}",
        f"or give any kling-async command: {shlex.join(flags)}",
        f"in Python: {python})",
    ]
    print("\n".join(lines), file=out)
    out.flush()


async def _until_stopped() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            continue
        installed.append(sig)
    try:
        await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
