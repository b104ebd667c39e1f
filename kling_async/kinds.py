"""The task families ("kinds") of the legacy task API and where they live.

A kind is the endpoint family a task belongs to: it gives the create/query/list paths and how a
watcher should pace its polls. The wire never says which kind a task is, so every ``Task``
carries it from here.
"""

from __future__ import annotations

import attrs

__all__ = ["KINDS", "Kind", "kind_named"]


@attrs.frozen
class Kind:
    """One task family.

    ``expected_seconds`` is the typical run time (ComfyUI's estimates, kling-api.md §8.11), used to
    pace polling; ``takes_external_task_id`` says whether creates accept ``external_task_id``
    (which makes a lost create answer recoverable by lookup).
    """

    name: str
    path: str
    expected_seconds: float
    takes_external_task_id: bool = True


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("video-extend", "/v1/videos/video-extend", 320.0),
        Kind("text2video", "/v1/videos/text2video", 319.0),
        Kind("image2video", "/v1/videos/image2video", 164.0),
        Kind("lip-sync", "/v1/videos/lip-sync", 455.0, takes_external_task_id=False),
        Kind("effects", "/v1/videos/effects", 320.0),
        Kind("image-generation", "/v1/images/generations", 32.0),
        Kind("virtual-try-on", "/v1/images/kolors-virtual-try-on", 19.0, False),
    )
}


def kind_named(name: str) -> Kind:
    """The :class:`Kind` called ``name``; a clear ``ValueError`` for an unknown one."""
    try:
        return KINDS[name]
    except KeyError:
        known = ", ".join(sorted(KINDS))
        raise ValueError(f"unknown task kind {name!r}; known kinds: {known}") from None
