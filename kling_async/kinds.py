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

    ``expected_seconds`` is the typical run time (ComfyUI's estimates, kling-api.md §8.11;
    kling-api-more-kinds.md §14 for the later kinds, and where it found none, the figure of the
    nearest documented kind), used to pace polling; ``takes_external_task_id`` says whether the
    client gives creates an ``external_task_id`` to find a lost create answer again by (a kind
    whose query by that id is undocumented says no: a look-up that cannot work must not pass
    for "no such task").
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
        # None found for these (§14): a video kind's 320 s, an image kind's 32 s.
        Kind("multi-image2video", "/v1/videos/multi-image2video", 320.0),
        Kind("omni-video", "/v1/videos/omni-video", 320.0),
        Kind("image-expand", "/v1/images/editing/expand", 32.0),
        Kind("multi-image2image", "/v1/images/multi-image2image", 32.0),
        # "as little as 2 minutes" (§14); its query documents task_id only (§7.2, §15).
        Kind("advanced-lip-sync", "/v1/videos/advanced-lip-sync", 120.0, False),
        Kind("avatar", "/v1/videos/avatar/image2video", 600.0),  # "10 minutes+" (§14)
        Kind("motion-control", "/v1/videos/motion-control", 320.0),
    )
}


def kind_named(name: str) -> Kind:
    """The :class:`Kind` called ``name``; a clear ``ValueError`` for an unknown one."""
    try:
        return KINDS[name]
    except KeyError:
        known = ", ".join(sorted(KINDS))
        raise ValueError(f"unknown task kind {name!r}; known kinds: {known}") from None
