"""Downloads from a hostile server: names from sanitised ids inside ``dest``, errors per task,
a size cap, media stored as sent, a policy for where media may come from (checked on every
redirect) and timeouts of their own."""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest
from yarl import URL

from kling_async import (
    DownloadError,
    KlingClient,
    MediaPolicy,
    RequestTimeoutError,
    ResponseFormatError,
    Task,
    TaskStatus,
    Timeouts,
    Video,
)
from kling_async.download import file_stem
from kling_async.models import TaskResult

from .hostile import HostileServer, media, redirect, slow_media

ClientFor = Callable[..., KlingClient]
VIDEO = b"\0\0\0\x18ftypmp42" + b"\x01" * 5000
REMOTE_API = "https://api.example.invalid"
OPEN = MediaPolicy(allow_http=True, allow_private=True)


def done(video_id: str, url: str, task_id: str | None = None) -> Task:
    return Task(
        kind="video-extend",
        task_id=task_id or f"t-{len(video_id)}",
        task_status=TaskStatus.SUCCEED,
        task_result=TaskResult(videos=(Video(id=video_id, url=url),)),
    )


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    "video_id", ["../../escaped", "/tmp/kling-async-absolute", "..", ".", ".hidden", "a/../../b"]
)
async def test_a_hostile_video_id_never_writes_outside_dest(
    server: HostileServer, client_for: ClientFor, tmp_path: Path, video_id: str
) -> None:
    server.on("/v.mp4", media(VIDEO))
    dest = tmp_path / "a" / "b" / "out"
    kling = client_for(server.url)
    (result,) = await kling.download([done(video_id, server.url + "/v.mp4")], dest)
    assert result.status == "downloaded"
    assert result.path is not None and result.path.parent == dest
    assert result.path.name == file_stem(video_id) + ".mp4"
    assert files_under(tmp_path) == [f"a/b/out/{result.path.name}"]
    assert "kling-async-absolute.mp4" not in os.listdir("/tmp")


def test_safe_ids_keep_their_name_and_others_get_a_bounded_hash() -> None:
    assert file_stem("860140917453590614") == "860140917453590614"
    assert file_stem("vid_a-b.c") == "vid_a-b.c"
    stems = {file_stem(v) for v in ("x\0y", "y" * 300, "a/b", "..", "", "é", "a..b")}
    assert len(stems) == 7
    assert all(s.startswith("id-") and len(s) == 35 for s in stems)


async def test_bad_ids_are_reported_per_task_and_the_others_complete(
    server: HostileServer, client_for: ClientFor, tmp_path: Path
) -> None:
    server.on("/v.mp4", media(VIDEO))
    url = server.url + "/v.mp4"
    ids = ["good", "nul\0byte", "l" * 300, "with/slash", "good2"]
    tasks = [done(v, url, task_id=f"t{i}") for i, v in enumerate(ids)]
    tasks.append(done("refused", "file:///etc/passwd", task_id="t-refused"))
    results = await client_for(server.url).download(tasks, tmp_path)
    assert [r.task_id for r in results] == [t.task_id for t in tasks]
    assert [r.status for r in results] == ["downloaded"] * 5 + ["failed"]
    assert isinstance(results[-1].error, DownloadError)
    assert len(files_under(tmp_path)) == 5


async def test_a_video_over_max_bytes_fails_and_leaves_nothing(
    server: HostileServer, client_for: ClientFor, tmp_path: Path
) -> None:
    server.on("/declared.mp4", media(VIDEO))
    server.on("/chunked.mp4", media(VIDEO, declared=False))
    kling = client_for(server.url)
    tasks = [done(n, f"{server.url}/{n}.mp4", task_id=n) for n in ("declared", "chunked")]
    results = await kling.download(tasks, tmp_path, max_bytes=len(VIDEO) - 1)
    assert [r.status for r in results] == ["failed", "failed"]
    assert all(isinstance(r.error, ResponseFormatError) for r in results)
    assert files_under(tmp_path) == []
    again = await kling.download(tasks, tmp_path, max_bytes=len(VIDEO))
    assert [r.status for r in again] == ["downloaded", "downloaded"]


async def test_media_is_stored_as_sent_never_decompressed(
    server: HostileServer, client_for: ClientFor, tmp_path: Path
) -> None:
    packed = gzip.compress(b"\0" * (4 << 20))  # 4 MiB of zeros, a few KiB on the wire
    server.on("/v.mp4", media(packed, headers={"Content-Encoding": "gzip"}))
    (result,) = await client_for(server.url).download(
        [done("v", server.url + "/v.mp4")], tmp_path, max_bytes=1 << 20
    )
    assert result.status == "downloaded"
    assert result.path is not None and result.path.read_bytes() == packed


@pytest.mark.parametrize(
    ("policy", "refused_for"),
    [
        (None, "plain http"),
        (MediaPolicy(allow_http=True), "not a public address"),
        (OPEN, None),
    ],
)
async def test_a_remote_api_gets_https_public_media_only_unless_allowed(
    server: HostileServer,
    client_for: ClientFor,
    tmp_path: Path,
    policy: MediaPolicy | None,
    refused_for: str | None,
) -> None:
    server.on("/v.mp4", media(VIDEO))
    kling = client_for(REMOTE_API, media_policy=policy)
    (result,) = await kling.download([done("v", server.url + "/v.mp4")], tmp_path)
    if refused_for is None:
        assert result.status == "downloaded"
        return
    assert result.status == "failed"
    assert isinstance(result.error, DownloadError)
    assert refused_for in str(result.error)
    assert server.seen == []


async def test_a_host_name_resolving_to_loopback_is_refused(
    server: HostileServer, client_for: ClientFor, tmp_path: Path
) -> None:
    server.on("/v.mp4", media(VIDEO))
    url = server.url.replace("127.0.0.1", "localhost") + "/v.mp4"
    kling = client_for(REMOTE_API, media_policy=MediaPolicy(allow_http=True))
    (result,) = await kling.download([done("v", url)], tmp_path)
    assert result.status == "failed"
    assert isinstance(result.error, DownloadError)
    assert server.seen == []


@attrs.frozen
class OnlyPort(MediaPolicy):
    """Everything allowed on one port: shows that each redirect is checked again."""

    port: int = 0

    def check(self, url: URL) -> None:
        super().check(url)
        if url.port != self.port:
            raise DownloadError(f"port {url.port} refused")


async def test_every_redirect_is_checked_before_it_is_followed(
    make_server: Callable[[], HostileServer],
    client_for: ClientFor,
    tmp_path: Path,
) -> None:
    cdn, internal = await make_server(), await make_server()  # type: ignore[misc]
    internal.on("/secret.mp4", media(b"internal data"))
    cdn.on("/hop.mp4", redirect("/v.mp4", 302))
    cdn.on("/v.mp4", media(VIDEO))
    cdn.on("/away.mp4", redirect(internal.url + "/secret.mp4", 302))
    cdn.on("/file.mp4", redirect("file:///etc/passwd", 301))
    cdn.on("/loop.mp4", redirect("/loop.mp4", 307))
    policy = OnlyPort(allow_http=True, allow_private=True, port=URL(cdn.url).port or 0)
    kling = client_for(cdn.url, media_policy=policy)
    names = ["hop", "away", "file", "loop"]
    results = await kling.download([done(n, f"{cdn.url}/{n}.mp4", n) for n in names], tmp_path)
    assert [r.status for r in results] == ["downloaded", "failed", "failed", "failed"]
    assert results[0].path is not None and results[0].path.read_bytes() == VIDEO
    assert "port" in str(results[1].error)
    assert "not an http(s) URL" in str(results[2].error)
    assert "redirects" in str(results[3].error)
    assert internal.seen == []


async def test_downloads_have_no_total_timeout_but_a_read_timeout(
    server: HostileServer, client_for: ClientFor, tmp_path: Path
) -> None:
    """A video that takes longer than the client's total timeout still arrives; a stalled one
    fails on the download read timeout."""
    server.on("/slow.mp4", slow_media(chunks=6, every=0.05))
    server.on("/stalled.mp4", slow_media(chunks=2, every=30.0))
    kling = client_for(server.url, timeouts=Timeouts(connect=1.0, read=1.0, total=0.1))
    (slow,) = await kling.download([done("slow", server.url + "/slow.mp4")], tmp_path)
    assert slow.status == "downloaded" and slow.size == 6 * 1024
    (stalled,) = await kling.download(
        [done("stalled", server.url + "/stalled.mp4")],
        tmp_path,
        timeouts=Timeouts(connect=1.0, read=0.1, total=None),
    )
    assert stalled.status == "failed"
    assert isinstance(stalled.error, RequestTimeoutError)


def test_the_default_policy_follows_the_base_url() -> None:
    assert MediaPolicy.for_base_url("https://api-singapore.klingai.com") == MediaPolicy()
    assert MediaPolicy.for_base_url("http://127.0.0.1:8000") == OPEN
    assert MediaPolicy.for_base_url("http://localhost:8000/kling") == OPEN
    with pytest.raises(DownloadError):
        MediaPolicy().check(URL("https://169.254.169.254/latest/meta-data"))
    with pytest.raises(DownloadError):
        MediaPolicy().check(URL("https://[::ffff:10.0.0.1]/v.mp4"))
    MediaPolicy().check(URL("https://cdn.example.com/v.mp4"))
