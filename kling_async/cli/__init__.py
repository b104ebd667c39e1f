"""The ``kling-async`` command line; ``main`` runs it (the console script, ``python -m``).

One module per command family: ``parser`` (the flags, and ``main``), ``tasks`` (extend,
text2video, image2video, get, watch, download), ``batch`` (its live view in ``progress``) and
``report``; ``session`` is what they share (exit codes, the client, Ctrl-C), ``input`` reads
batch files and ``output`` writes text and JSON. Nothing here imports rich until a command runs.
"""

from .parser import build_parser, main

__all__ = ["build_parser", "main"]
