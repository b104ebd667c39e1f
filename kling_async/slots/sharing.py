"""The slot gate a :class:`~kling_async.KlingClient` is built with, and what it shares.

``KlingClient(slots=..., slot_timeout=..., coordinator=...)`` come here: checked, then made into
one :class:`~kling_async.slots.SlotGate` bound to a coordinator — in-process (the default), a
``postgresql://`` DSN (a :class:`~kling_async.postgres.coordinator.PostgresCoordinator` is made
for it), or a coordinator object — on the account named by the client's credentials and base URL.
"""

from __future__ import annotations

from collections.abc import Callable

from ..auth import Credentials
from ..clock import Clock
from ..errors import ConfigurationError
from ..polling.scheduler import PollScheduler
from .coordination import Coordinator, LocalCoordinator, account_key
from .gate import SlotGate

__all__ = ["gate_for"]


def _coordinator(value: str | Coordinator | None) -> Coordinator:
    if value is None:
        return LocalCoordinator()
    if isinstance(value, str):
        if not value.startswith(("postgresql://", "postgres://")):
            raise ConfigurationError("coordinator must be a postgresql:// DSN or a Coordinator")
        from ..postgres.coordinator import PostgresCoordinator

        return PostgresCoordinator(value)
    return value


def gate_for(
    clock: Clock,
    scheduler: PollScheduler,
    credentials: Credentials,
    base_url: str,
    *,
    slots: int | None,
    slot_timeout: float | None,
    backoff: Callable[[int, BaseException], float],
    coordinator: str | Coordinator | None,
) -> SlotGate:
    """One gate for every create of a client: the account's slots are shared by all."""
    if slots is not None and (isinstance(slots, bool) or not isinstance(slots, int) or slots < 1):
        raise ConfigurationError(f"slots must be an int >= 1 or None, got {slots!r}")
    if slot_timeout is not None and not slot_timeout > 0:
        raise ConfigurationError(f"slot_timeout must be > 0 seconds or None, got {slot_timeout!r}")
    shared = _coordinator(coordinator)
    gate = SlotGate(
        clock,
        limit=slots,
        timeout=slot_timeout,
        backoff=backoff,
        scheduler=scheduler,
        coordinator=shared,
    )
    if shared.shared:
        shared.attach(
            account_key(credentials.identity(), base_url),
            lambda task, trusted: scheduler.hint(task, trusted=trusted, relayed=True),
            clock=clock,
        )
        scheduler.relay = lambda task, trusted: shared.publish(task, trusted)
    return gate
