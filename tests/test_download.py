"""Downloads: complete files only, existing ones skipped, purged results reported, no secret
sent to the media host."""

from __future__ import annotations

import asyncio
from pathlib import Path

import attrs
from aiohttp import web

from kling_async import FakeClock, Task, TaskStatus, Video
from kling_async.models import TaskResult
from kling_async.testing import Durations

from .conftest import MakeClient, MakeEmulator
from .watching import run_clock


async def finished_tasks(emu, kling, clock: FakeClock, n: int) -> list[Task]:  # type: ignore[no-untyped-def]
    seed = emu.add_video()
    tasks = [await kling.extend_video(seed.video_id) for _ in range(n)]
    await clock.advance(100)
    return [await kling.get_task(t) for t in tasks]


async def test_videos_are_downloaded_once(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock, tmp_path: Path
) -> None:
    emu = await make_emulator(durations=Durations(queued=1, running=20))
    kling = make_client(emu)
    tasks = await finished_tasks(emu, kling, clock, 3)
    results = await kling.download(tasks, tmp_path / "out", concurrency=2)
    assert [r.status for r in results] == ["downloaded"] * 3
    for result in results:
        assert result.path is not None and result.path.exists()
        assert result.path.stat().st_size == result.size > 0
        assert result.path.read_bytes()[4:8] == b"ftyp"
    assert not list((tmp_path / "out").glob(".*part"))
    again = await kling.download(tasks, tmp_path / "out")
    assert [r.status for r in again] == ["skipped"] * 3
    assert emu.stats.requests[("GET", "media", 200)] == 3


async def test_unfinished_and_expired_tasks_are_not_fetched(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock, tmp_path: Path
) -> None:
    emu = await make_emulator(durations=Durations(queued=1, running=20))
    kling = make_client(emu)
    (done,) = await finished_tasks(emu, kling, clock, 1)
    pending = Task(kind="video-extend", task_id="1", task_status=TaskStatus.PROCESSING)
    old = attrs.evolve(done, created_at=int((clock.time() - 31 * 86_400) * 1000))
    results = await kling.download([pending, old], tmp_path)
    assert [r.status for r in results] == ["no_video", "expired"]
    assert sum(n for (m, r, s), n in emu.stats.requests.items() if r == "media") == 0


async def test_a_cut_short_download_leaves_no_file(
    make_client: MakeClient, make_emulator: MakeEmulator, tmp_path: Path
) -> None:
    """A media host that promises 1000 bytes and sends 10: reported failed, nothing left."""
    seen_headers: list[str] = []

    async def short(request: web.Request) -> web.StreamResponse:
        seen_headers.extend(request.headers)
        response = web.StreamResponse(headers={"Content-Length": "1000"})
        await response.prepare(request)
        await response.write(b"0123456789")
        request.transport.close()  # type: ignore[union-attr]
        return response

    async def missing(request: web.Request) -> web.Response:
        return web.Response(status=404, text="gone")

    app = web.Application()
    app.router.add_get("/short.mp4", short)
    app.router.add_get("/missing.mp4", missing)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        emu = await make_emulator()
        kling = make_client(emu)
        tasks = [
            Task(
                kind="video-extend",
                task_id=name,
                task_status=TaskStatus.SUCCEED,
                task_result=TaskResult(
                    videos=(Video(id=name, url=f"http://127.0.0.1:{port}/{name}.mp4"),)
                ),
            )
            for name in ("short", "missing")
        ]
        results = await kling.download(tasks, tmp_path)
        assert [r.status for r in results] == ["failed", "failed"]
        assert (
            results[1].error is not None and getattr(results[1].error, "http_status", None) == 404
        )
        assert await asyncio.to_thread(lambda: list(tmp_path.iterdir())) == []
        assert "Authorization" not in seen_headers
    finally:
        await runner.cleanup()
        await asyncio.sleep(0)


async def test_download_after_a_watched_batch(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock, tmp_path: Path
) -> None:
    emu = await make_emulator(durations=Durations(queued=1, running=20))
    kling = make_client(emu)
    seed = emu.add_video()
    task = await kling.extend_video(seed.video_id, watermark=True)
    waiting = asyncio.ensure_future(kling.wait(task))
    await run_clock(clock, kling, waiting.done)
    done = await waiting
    (result,) = await kling.download([done], tmp_path, watermarked=True)
    assert result.status == "downloaded"
    assert result.path is not None and result.path.name.endswith("-wm.mp4")
