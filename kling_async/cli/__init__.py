"""The ``kling-async`` command line; ``main`` runs it (the console script, ``python -m``).

One module per command family: ``parser`` (the flags, and ``main``; numeric flag types in
``flags``), ``tasks`` (extend, text2video, image2video, get, watch), ``downloads``, ``batch``
(its live view in ``progress``) and ``report``; ``session`` is what they share (exit codes, the
client, Ctrl-C, a closed stdout), ``live`` the live displays and whether the API answers,
``files`` the checks and private creation of what they write, ``input`` reads batch files and
``output`` writes text (no control characters from servers) and JSON. Nothing here imports
rich until a command runs.
"""

from .parser import build_parser, main

__all__ = ["build_parser", "main"]
