"""Concurrency slots: the one :class:`SlotGate` every create of a client passes.

:mod:`.slot` holds a :class:`Slot` and the :class:`SlotLimit` (given, or learned: slow start,
then AIMD on 1303); :mod:`.gate` hands slots out and keeps them until their task ends;
:mod:`.tasks` follows the running tasks that hold them; :mod:`.coordination` is what several
processes on one account share (:class:`Coordinator`, in-process :class:`LocalCoordinator`);
:mod:`.sharing` gives every client of one account and coordinator the same gate.
"""

from __future__ import annotations

from .coordination import Allowed, Coordinator, Lease, LocalCoordinator, account_key
from .gate import SlotGate
from .sharing import gate_for
from .slot import Slot, SlotLimit, SlotOwner, UnsettledSlots, slot_weight
from .tasks import SlotTasks

__all__ = [
    "Allowed",
    "Coordinator",
    "Lease",
    "LocalCoordinator",
    "Slot",
    "SlotGate",
    "SlotLimit",
    "SlotOwner",
    "SlotTasks",
    "UnsettledSlots",
    "account_key",
    "gate_for",
    "slot_weight",
]
