"""What ``kling-async --help`` says around the commands: the description and the epilog
(output formats, exit codes), kept apart from the parser that shows them."""

from __future__ import annotations

__all__ = ["DESCRIPTION", "EPILOG"]

DESCRIPTION = """\
Create Kling tasks (video-extend, text2video, image2video), follow them, and run resumable bulk
batches of any kind.

Credentials come from --access-key/--secret-key or --api-key, else KLING_ACCESS_KEY and
KLING_SECRET_KEY, or KLING_API_KEY (prefer the variables: flags show in the process list); the
base URL from --base-url, else KLING_BASE_URL (default https://api-singapore.klingai.com; a
relay's URL ends in /kling). --emulator runs any command against an in-process emulator instead
(no account needed).
"""

EPILOG = """\
output:
  People get tables and, when stdout is a terminal, live progress. With --json, stdout carries
  JSON Lines only: one object per line, each with a "type" ("task", "change", "outcome",
  "summary", "report", "entry", "download", "missing", "interrupted", "error"); messages for
  people go to stderr. Times in them are Unix milliseconds; durations are seconds.

exit codes:
  0    everything asked for succeeded
  1    some tasks failed, were rejected, timed out, were not found, not sent or not downloaded
  2    usage or input error (bad flags, a bad input file: nothing sent; a file or folder
       that cannot be used; a journal in use; no credentials; not a journal; no rich)
  3    the API refused: credentials, account (balance, permission), policy or the request;
       or batch --preflight found the resource packs short of the batch's estimate
  4    the API could not be reached or gave no usable answer (network, 5xx, garbled JSON,
       a create whose answer was lost; given up after 6 failed attempts in a row)
  5    a batch's postgresql:// journal stayed unreachable past --db-outage (default 60 s):
       the worker stopped, nothing lost; run it again to resume
  130  interrupted (Ctrl-C, or stdout closed); run a batch again to resume it
"""
