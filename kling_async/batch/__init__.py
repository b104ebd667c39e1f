"""Many creates as one job: a :class:`Batch` of requests and the helpers it runs on.

:mod:`.run` drives a batch (journal first, one create at a time per request, outcomes in the
order tasks end); :mod:`.inputs` turns what a caller gives into requests and their keys;
:mod:`.outcomes` is what a batch reports; :mod:`.resume` settles what a journal left open;
:mod:`.shared` opens the journal a batch is given (a path, a ``postgresql://`` DSN, a journal);
:mod:`.callbacks` recovers lost create answers from callbacks; :mod:`.preflight` checks the
balance before anything is sent; :mod:`.chain` extends one video step by step.
"""

from __future__ import annotations

from .chain import MAX_VIDEO_SECONDS, Chain, ChainStep, Extender, extend_until
from .inputs import RequestLike, request_key
from .outcomes import BatchReport, Outcome, OutcomeKind, Progress
from .preflight import Preflight, UnitCosts
from .run import Batch, ListeningReceiver

__all__ = [
    "MAX_VIDEO_SECONDS",
    "Batch",
    "BatchReport",
    "Chain",
    "ChainStep",
    "Extender",
    "ListeningReceiver",
    "Outcome",
    "OutcomeKind",
    "Preflight",
    "Progress",
    "RequestLike",
    "UnitCosts",
    "extend_until",
    "request_key",
]
