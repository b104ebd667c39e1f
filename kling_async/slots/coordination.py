"""What a client shares with the other processes on its account: the :class:`Coordinator`.

A client alone on its account needs nothing shared: its :class:`~kling_async.slots.SlotGate`
counts the slots, its :class:`~kling_async.slots.SlotLimit` learns the limit, and a callback
reaches the one poll scheduler there is. That is :class:`LocalCoordinator`, the default, whose
every method does nothing.

Several workers or replicas on one account share, through a coordinator
(:class:`~kling_async.postgres.coordinator.PostgresCoordinator`):

- the slots: the gate takes a :class:`Lease` for each slot it hands out (``take``), so slots
  held = tasks created and not yet ended, in every process; a lease lives while its process
  renews it, so a dead process's slots come back;
- the learned slot limit (``learned``; the gate adopts what others learned through the
  ``allowed`` callback of ``take``, and a new process starts from it: ``stored_limit``);
- callbacks: every hint a receiver gives its scheduler is published (``publish``), and each
  process hands what others published to its own scheduler, so whichever replica a callback
  reaches, every replica's ``wait()`` and ``watch()`` on that task wake.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from typing import Protocol

from ..clock import Clock
from ..models import Task

__all__ = ["Allowed", "Coordinator", "Lease", "LocalCoordinator", "account_key"]

#: ``allowed(stored, running)``: the slots the account may hold, given the limit others stored
#: (``None``: none yet) and the slots held by running tasks of every process.
Allowed = Callable[[int | None, int], int]


def account_key(identity: str, base_url: str) -> str:
    """A name for the account ``identity`` (an access key or API key) has at ``base_url``,
    safe to store where others can read it: a digest the key cannot be read back from."""
    data = f"{base_url.rstrip('/')}\n{identity}".encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=16, person=b"kling-account").hexdigest()


class Lease:
    """Slots held in the shared count for one create (``weight``), named by ``key``."""

    __slots__ = ("key", "task_id", "weight")

    def __init__(self, weight: int) -> None:
        self.key = uuid.uuid4().hex
        self.weight = weight
        self.task_id: str | None = None

    def __repr__(self) -> str:
        return f"Lease(weight={self.weight}, task_id={self.task_id!r})"


class Coordinator(Protocol):
    """What a client's gate and scheduler share with the other processes of the account."""

    @property
    def shared(self) -> bool:
        """Whether anything is shared (``False``: the gate works alone, as it always did)."""
        ...

    def attach(
        self, account: str, hint: Callable[[Task, bool], object], *, clock: Clock | None = None
    ) -> None:
        """Bind to ``account``; ``hint(task, trusted)`` takes what other processes publish;
        ``clock`` is the client's, on which ``take``'s ``timeout`` runs."""
        ...

    def open(self) -> None:
        """Start connecting in the background (from inside the running loop); idempotent."""
        ...

    async def start(self) -> int | None:
        """Connect (idempotent); return the slot limit stored for the account, if any."""
        ...

    async def take(self, weight: int, allowed: Allowed, timeout: float | None) -> Lease | None:
        """Wait until ``weight`` slots fit the shared count and take them; ``None`` when
        ``timeout`` (seconds) passed first."""
        ...

    def hold(self, weight: int) -> Lease:
        """Count ``weight`` slots of a task that runs already, whatever the limit."""
        ...

    def created(self, lease: Lease, task_id: str) -> None:
        """The create of ``lease`` made ``task_id``: it holds the lease until it ends."""
        ...

    def release(self, lease: Lease) -> None:
        """Give ``lease`` back (its task ended, or the create made nothing)."""
        ...

    def ended(self, task_id: str) -> None:
        """``task_id`` was seen ending here, whichever process holds its lease (one that died
        holds it until its lease runs out, though the task no longer holds a slot)."""
        ...

    def running(self, own: int) -> int:
        """Slots held by running tasks of every process, given ``own`` (this one's)."""
        ...

    @property
    def sharers(self) -> int:
        """How many processes hold slots of the account (this one counts as one at least)."""
        ...

    def learned(self, limit: int) -> None:
        """This process learned that the account has ``limit`` slots: tell the others."""
        ...

    def publish(self, task: Task, trusted: bool) -> None:
        """A callback said ``task`` is in this state: tell the other processes."""
        ...

    async def aclose(self) -> None:
        """Stop sharing (the client is closing)."""
        ...


class LocalCoordinator:
    """Nothing shared: the client is alone on its account (the default)."""

    shared = False

    def attach(
        self, account: str, hint: Callable[[Task, bool], object], *, clock: Clock | None = None
    ) -> None:
        pass

    def open(self) -> None:
        pass

    async def start(self) -> int | None:
        return None

    async def take(self, weight: int, allowed: Allowed, timeout: float | None) -> Lease | None:
        return Lease(weight)

    def hold(self, weight: int) -> Lease:
        return Lease(weight)

    def created(self, lease: Lease, task_id: str) -> None:
        lease.task_id = task_id

    def release(self, lease: Lease) -> None:
        pass

    def ended(self, task_id: str) -> None:
        pass

    def running(self, own: int) -> int:
        return own

    sharers = 1

    def learned(self, limit: int) -> None:
        pass

    def publish(self, task: Task, trusted: bool) -> None:
        pass

    async def aclose(self) -> None:
        pass

    def __repr__(self) -> str:
        return "LocalCoordinator()"
