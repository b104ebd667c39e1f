"""``POST /v1/videos/identify-face`` (kling-api-more-kinds.md §7.1): the synchronous face
look-up before an advanced lip-sync, and the sessions it opens.

Rules modelled, from §7.1: ``video_id`` xor ``video_url``; an id names an available Kling
video (≤ 30 days old) of at most 60 s; a URL is an http(s) URL, and one of this emulator's
own media URLs must still exist and last 2–60 s (any other URL is taken on trust as a 5 s
video). The answer is ``{session_id, face_data[], final_unit_deduction}``; a session is valid
for 24 h. Not modelled: several faces (the emulator finds one face, on screen for the whole
video), the ``face_image`` URL is not served, and the call's price is unknown (reported as
``"0"``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from kling_async.testing._replies import ApiError
from kling_async.testing._tasks import VideoRecord
from kling_async.testing._validation import optional_id, optional_url

__all__ = ["FaceSession", "FaceSessions"]

SESSION_SECONDS = 24 * 3600.0  # §7.1: a session_id is valid for 24 hours
VIDEO_SECONDS = (2.0, 60.0)  # URL: 2-60 s; an id: at most 60 s
FOREIGN_SECONDS = 5.0  # the length assumed for a URL the emulator did not make
FACE_ID = "0"


@attrs.frozen
class FaceSession:
    """One identification: the video it looked at (``None``: a URL from elsewhere), how long
    that video is, the ids of the faces found, and when it was opened (clock seconds)."""

    session_id: str
    video: VideoRecord | None
    seconds: float
    face_ids: tuple[str, ...]
    opened_at: float


class FaceSessions:
    """The sessions ``identify-face`` opened on one emulated account."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._sessions: dict[str, FaceSession] = {}

    def identify(
        self,
        body: Mapping[str, Any],
        *,
        now: float,
        base_url: str,
        video: Callable[[str, str], VideoRecord],
        video_at: Callable[[str, str], VideoRecord | None],
    ) -> dict[str, Any]:
        """Check the body, open a session and return the answer's ``data``."""
        video_id = optional_id(body, "video_id")
        video_url = optional_url(body, "video_url")
        if (video_id is None) == (video_url is None):
            raise ApiError.invalid("give exactly one of video_id, video_url")
        if video_id is not None:
            record: VideoRecord | None = video(video_id, "video_id")
            low, field = 0.0, "video_id"
        else:
            assert video_url is not None
            record = video_at(video_url, "video_url")
            low, field = VIDEO_SECONDS[0], "video_url"
        seconds = FOREIGN_SECONDS if record is None else record.duration
        if not low <= seconds <= VIDEO_SECONDS[1]:
            span = f"at most {VIDEO_SECONDS[1]:g}s" if low == 0 else "2-60s"
            raise ApiError.invalid(
                f"{field}: the video is {seconds:g}s; identify-face takes {span}"
            )
        session_id = f"{self._rng.getrandbits(64):016x}"
        self._sessions[session_id] = FaceSession(session_id, record, seconds, (FACE_ID,), now)
        face = {
            "face_id": FACE_ID,
            "face_image": f"{base_url}/media/faces/{session_id}-{FACE_ID}.png",
            "start_time": 0,
            "end_time": round(seconds * 1000),
        }
        return {"session_id": session_id, "face_data": [face], "final_unit_deduction": "0"}

    def find(self, session_id: str, now: float) -> FaceSession:
        """The open session ``session_id``; a 1201 naming ``session_id`` if it is unknown or
        older than 24 h."""
        session = self._sessions.get(session_id)
        if session is None:
            raise ApiError.invalid("session_id does not name a face identification")
        if now - session.opened_at > SESSION_SECONDS:
            raise ApiError.invalid("session_id has expired (sessions last 24 hours)")
        return session
