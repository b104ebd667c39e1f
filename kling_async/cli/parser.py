"""The ``kling-async`` argument parser (argparse, stdlib) and ``main``, which runs a command.

Output uses rich, which is an extra (``pip install 'kling-async[cli]'``): it is imported only
once a command runs, so ``--help`` works without it. Every numeric flag has a type from
``flags``: a bad value is refused here, before anything runs. The commands live in ``tasks``
(extend, text2video, image2video, get, watch), ``downloads``, ``batch`` (its live view in
``progress``) and ``report``; ``session`` holds what they share (exit codes, the client or the
emulator, Ctrl-C), ``kling_async.requests.fields`` builds requests from flags and rows,
``input`` reads batch files, ``output`` writes text and JSON.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from .._argtypes import fraction, integer, non_negative, positive, unix_time
from .._version import __version__
from ..kinds import KINDS
from .help_text import DESCRIPTION, EPILOG

if TYPE_CHECKING:
    from .session import Context

__all__ = ["build_parser", "main"]

RICH_HINT = "kling-async needs rich for its output: pip install 'kling-async[cli]'"


def _client_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    api = parent.add_argument_group("API access (default: the KLING_* environment variables)")
    api.add_argument("--access-key", metavar="AK", help="official AccessKey (KLING_ACCESS_KEY)")
    api.add_argument("--secret-key", metavar="SK", help="official SecretKey (KLING_SECRET_KEY)")
    api.add_argument(
        "--api-key", metavar="KEY", help="console API key or relay key (KLING_API_KEY)"
    )
    api.add_argument("--base-url", metavar="URL", help="API base URL (KLING_BASE_URL)")
    emu = parent.add_argument_group("emulator")
    emu.add_argument(
        "--emulator",
        action="store_true",
        help="run against an in-process emulator (seeded with the videos the command names)",
    )
    emu.add_argument(
        "--time-scale",
        type=positive,
        metavar="X",
        help="clock speed-up: emulated seconds per real second (default 60 with --emulator; "
        "against an external emulator on a scaled clock, give its scale)",
    )
    emu.add_argument(
        "--time-origin",
        type=unix_time,
        metavar="EPOCH",
        help="Unix time at which that external emulator's scaled clock was started (the "
        "emulator command prints both; also KLING_TIME_SCALE and KLING_TIME_ORIGIN)",
    )
    emu.add_argument(
        "--emulator-slots",
        type=integer(0),
        default=10,
        metavar="N",
        help="the emulated account's parallel task slots (default 10; 0: unlimited)",
    )
    emu.add_argument(
        "--emulator-failure-rate",
        type=fraction,
        default=0.0,
        metavar="P",
        help="share of emulated tasks that end failed (default 0)",
    )
    emu.add_argument("--emulator-seed", type=int, default=0, metavar="N", help=argparse.SUPPRESS)
    return parent


def _json_option() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--json", action="store_true", help="JSON Lines on stdout (one object per line)"
    )
    return parent


def _prompt_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--negative-prompt", metavar="TEXT", help="what the video should not show")
    p.add_argument("--cfg-scale", metavar="0..1", help="how closely to follow the prompt")


def _video_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mode", metavar="std|pro", help="std (default) or pro (better, costs more)")
    p.add_argument("--duration", metavar="5|10", help="seconds (default 5)")
    p.add_argument("--model-name", metavar="NAME", help="e.g. kling-v1 (default), kling-v1-6")
    p.add_argument(
        "--camera-control",
        metavar="JSON",
        help='a camera move: {"type": "simple", "config": {"zoom": 5}} (one axis non-zero, '
        'in [-10, 10]) or a preset {"type": "down_back"}',
    )


def _create_flags(p: argparse.ArgumentParser) -> None:
    """What every create command takes last: callbacks, ids, and following the task."""
    p.add_argument("--callback-url", metavar="URL")
    p.add_argument("--external-task-id", metavar="ID")
    p.add_argument("--wait", action="store_true", help="follow the task to its end")
    p.add_argument(
        "--timeout", type=positive, metavar="SECONDS", help="with --wait: stop waiting (> 0)"
    )


def _batch_fields() -> str:
    """The batch file's fields by kind, for ``batch --help``."""
    from ..requests.fields import KIND_NAMES, describe_fields

    lines = ["fields by kind (JSON keys or CSV columns; a row's kind column picks one):"]
    for name in KIND_NAMES:
        lines += textwrap.wrap(
            f"{name}: {describe_fields(name)}",
            width=96,
            initial_indent="  ",
            subsequent_indent="      ",
        )
    lines += textwrap.wrap(
        "Nested objects (camera_control, dynamic_masks, an input, image_list...) are JSON; "
        "in CSV, a cell of JSON. CSV cells of numbers and true/false are read as such.",
        width=96,
        initial_indent="  ",
        subsequent_indent="  ",
    )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    from ..requests.fields import KIND_NAMES

    parser = argparse.ArgumentParser(
        prog="kling-async",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    client, json_out = _client_options(), _json_option()
    both = [client, json_out]

    def command(
        name: str, help: str, parents: list[argparse.ArgumentParser], *, more: str = ""
    ) -> Any:
        return commands.add_parser(
            name,
            help=help,
            description=help,
            parents=parents,
            epilog=f"{more}\n\n{EPILOG}" if more else EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    p = command("extend", "create a video-extend task (4-5 more seconds of a video)", both)
    p.set_defaults(create_kind="video-extend")
    p.add_argument(
        "video_id", metavar="VIDEO_ID", help="the video to extend (a video id, not a task id)"
    )
    p.add_argument(
        "--parent-task-id",
        "--task-id",
        dest="parent_task_id",
        metavar="ID",
        help="the task that made the video (relays need it)",
    )
    p.add_argument("--prompt", metavar="TEXT", help="what should happen (at most 2500 characters)")
    _prompt_flags(p)
    p.add_argument("--watermark", action="store_true", default=None, help="also a watermarked copy")
    _create_flags(p)

    p = command("text2video", "create a text-to-video task", both)
    p.set_defaults(create_kind="text2video")
    p.add_argument(
        "prompt", metavar="PROMPT", help="what the video shows (at most 2500 characters)"
    )
    _prompt_flags(p)
    _video_flags(p)
    p.add_argument("--aspect-ratio", metavar="16:9|9:16|1:1")
    _create_flags(p)

    p = command("image2video", "create an image-to-video task: animate an image", both)
    p.set_defaults(create_kind="image2video")
    image = "an http(s) URL, raw base64 (no data: prefix) or @path of a local file"
    p.add_argument("--image", metavar="IMAGE", help=f"the first frame: {image}")
    p.add_argument(
        "--image-tail",
        metavar="IMAGE",
        help="the last frame (same forms; --image, --image-tail or both); not with masks or "
        "--camera-control",
    )
    p.add_argument("--prompt", metavar="TEXT", help="what should happen (at most 2500 characters)")
    _prompt_flags(p)
    _video_flags(p)
    p.add_argument("--static-mask", metavar="IMAGE", help="the area that stays still")
    p.add_argument(
        "--dynamic-masks",
        metavar="JSON",
        help='areas that move: [{"mask": IMAGE, "trajectories": [{"x": 0, "y": 0}, ...]}, ...]',
    )
    _create_flags(p)

    p = command(
        "create",
        "create a task of any kind from its fields",
        both,
        more="e.g. create --kind effects -f effect_scene=squish -f 'input={\"image\": URL}'\n"
        + _batch_fields(),
    )
    p.set_defaults(create_kind=None)
    p.add_argument(
        "--kind",
        required=True,
        choices=KIND_NAMES,
        metavar="KIND",
        help="the kind of task (fields below)",
    )
    p.add_argument(
        "-f",
        "--field",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="one field of the request (repeat): numbers and true/false as such, JSON for "
        "lists and objects, @path for a local image file",
    )
    _create_flags(p)

    kind = {
        "default": None,
        "choices": tuple(KINDS),
        "metavar": "KIND",
        "help": f"task family: {', '.join(KINDS)}; default: each family is tried, "
        "video-extend first",
    }
    ids_help = "task ids or external_task_ids"
    p = command("get", "show tasks as they are now", both)
    p.add_argument("task_ids", nargs="+", metavar="TASK_ID", help=ids_help)
    p.add_argument("--kind", **kind)

    p = command("watch", "follow tasks live until they end", both)
    p.add_argument("task_ids", nargs="+", metavar="TASK_ID", help=ids_help)
    p.add_argument("--kind", **kind)
    p.add_argument(
        "--timeout", type=positive, metavar="SECONDS", help="stop waiting after this (> 0)"
    )

    p = command(
        "batch",
        "create a task for every row of a JSONL or CSV file, resumably",
        both,
        more=_batch_fields(),
    )
    p.add_argument(
        "file",
        metavar="FILE",
        help="JSON Lines or CSV, one request per row: its kind (default video-extend) and the "
        "fields of that kind (below)",
    )
    p.add_argument(
        "--kind",
        choices=KIND_NAMES,
        metavar="KIND",
        help="the kind of the rows that name none (default video-extend)",
    )
    p.add_argument(
        "--journal",
        metavar="FILE",
        help="SQLite journal (default FILE.journal.sqlite, FILE.emulator.journal.sqlite with "
        "--emulator); run again with the same journal to resume. A postgresql:// DSN (or just "
        "postgresql:// for the PG* variables) shares the batch between workers on any machine",
    )
    p.add_argument(
        "--batch",
        metavar="NAME",
        help="with a postgresql:// journal: the batch's name (default: FILE's name); every "
        "worker of the batch gives the same",
    )
    p.add_argument(
        "--db-outage",
        type=non_negative,
        metavar="SECONDS",
        help="with a postgresql:// journal: how long the database may stay unreachable before "
        "this worker stops with exit 5 (default 60, or the DSN's kling_outage)",
    )
    p.add_argument(
        "--results",
        metavar="FILE",
        help="results JSONL, one line per request (default FILE.results.jsonl, "
        "FILE.emulator.results.jsonl with --emulator)",
    )
    p.add_argument(
        "--slots", type=integer(1), metavar="N", help="parallel tasks (default: learned)"
    )
    p.add_argument(
        "--timeout", type=positive, metavar="SECONDS", help="stop waiting for a task (> 0)"
    )
    p.add_argument("--download", metavar="DIR", help="then download the result videos into DIR")
    p.add_argument(
        "--resend-ambiguous",
        action="store_true",
        help="send again the journalled creates whose answer was lost and that a fresh look-up "
        "still cannot find (each may then be paid twice)",
    )
    p.add_argument(
        "--preflight",
        action="store_true",
        help="first estimate the units the batch will spend and compare them with the account's "
        "resource packs; short: exit 3, nothing sent (estimates: see UnitCosts)",
    )

    p = command("report", "summarise a batch journal (works while the batch runs)", [json_out])
    p.add_argument(
        "journal",
        metavar="JOURNAL",
        help="the batch's .journal.sqlite file, or the postgresql:// DSN of a shared batch",
    )
    p.add_argument("--batch", metavar="NAME", help="with a postgresql:// DSN: the batch to show")
    p.add_argument("--entries", action="store_true", help="with --json: every entry too")

    p = command("download", "download the videos of finished tasks", both)
    p.add_argument("task_ids", nargs="*", metavar="TASK_ID", help=ids_help)
    p.add_argument("--journal", metavar="FILE", help="every succeeded task of a batch journal")
    p.add_argument("--dest", default="videos", metavar="DIR", help="folder (default ./videos)")
    p.add_argument(
        "--concurrency",
        type=integer(1),
        default=4,
        metavar="N",
        help="downloads at once (default 4)",
    )
    p.add_argument("--watermarked", action="store_true", help="the watermarked copies")
    p.add_argument("--kind", **kind)

    from ..testing._standalone import add_arguments

    p = commands.add_parser(
        "emulator",
        help="serve a Kling API emulator (for testing only) and print how to use it",
        description="Serve a Kling API emulator (official /v1 and relay /kling/v1 routes) "
        "until Ctrl-C, for testing only, and print its URL, credentials and clock: a line to "
        "paste into another shell puts every kling-async command on its clock.",
    )
    add_arguments(p)
    return parser


def _command(name: str) -> Callable[[Context], Awaitable[int]]:
    from . import batch, downloads, report, tasks

    commands: dict[str, Callable[[Context], Awaitable[int]]] = {
        "extend": tasks.create_command,
        "text2video": tasks.create_command,
        "image2video": tasks.create_command,
        "create": tasks.create_command,
        "get": tasks.get_command,
        "watch": tasks.watch_command,
        "download": downloads.download_command,
        "batch": batch.batch_command,
        "report": report.report_command,
    }
    return commands[name]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``kling-async`` with ``argv`` (default: the process's); returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if args.command == "emulator":
        from ..testing._standalone import run

        return run(args)
    try:
        import rich  # noqa: F401
    except ImportError:
        print(RICH_HINT, file=sys.stderr)
        return 2
    from .output import Output
    from .session import Context, run_command

    ctx = Context(args, Output(json_mode=getattr(args, "json", False)))
    return run_command(ctx, _command(args.command))
