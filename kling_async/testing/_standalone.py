"""Serve one emulator from the command line until Ctrl-C (or SIGTERM).

``main(argv)`` is ``python -m kling_async.testing``; a CLI can mount the same options as a
subcommand with :func:`add_arguments` and :func:`run`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence
from typing import TextIO

from kling_async.testing._emulator import KlingEmulator

__all__ = ["add_arguments", "main", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind (default 0: any free)")
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="emulated seconds per real second (default 1; 100 makes a 320 s extend take 3.2 s)",
    )
    parser.add_argument("--slots", type=int, default=None, help="task slots (default unlimited)")
    parser.add_argument("--balance", type=float, default=None, help="units (default unlimited)")
    parser.add_argument("--seed", type=int, default=0, help="seed for ids, durations, failures")
    parser.add_argument("--webhook-secret", default=None, help="whsec_... to sign callbacks")


def run(args: argparse.Namespace, *, out: TextIO = sys.stdout) -> int:
    """Serve with the options :func:`add_arguments` defined; returns the exit status."""
    try:
        emulator = KlingEmulator(
            host=args.host,
            port=args.port,
            time_scale=args.time_scale,
            slot_limit=args.slots,
            balance_units=args.balance,
            seed=args.seed,
            webhook_secret=args.webhook_secret,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):  # where signal handlers are unsupported
        asyncio.run(_serve(emulator, out))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kling_async.testing",
        description="Serve a Kling API emulator (official /v1 and relay /kling/v1 routes).",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


async def _serve(emulator: KlingEmulator, out: TextIO) -> None:
    async with emulator as emu:
        parent = emu.add_video(5.0)
        jwt, key, relay = (emu.client_kwargs(f) for f in ("jwt", "key", "relay"))
        print(f"Kling emulator listening on {emu.url}  (Ctrl-C to stop)", file=out)
        print(f"  official  base_url={emu.url}", file=out)
        print(
            f"            access_key={jwt['access_key']}  secret_key={jwt['secret_key']}", file=out
        )
        print(f"            api_key={key['api_key']}", file=out)
        print(f"  relay     base_url={relay['base_url']}  api_key={relay['api_key']}", file=out)
        print(
            f"  a video to extend: video_id={parent.video_id}  task_id={parent.task_id}", file=out
        )
        out.flush()
        await _until_stopped()


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
