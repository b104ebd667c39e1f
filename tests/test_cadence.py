"""The learned cadence: duration sketches, and where polls land for a known distribution."""

from __future__ import annotations

import asyncio
import math
import random
from pathlib import Path

import pytest

from kling_async import FakeClock, KlingClient
from kling_async.polling.cadence import Cadence
from kling_async.polling.durations import DurationModel, DurationSketch, profile_key
from kling_async.testing import Durations, KlingEmulator

from .conftest import MakeClient, MakeEmulator, requests_to
from .watching import run_batch, run_clock


def learned(values: list[float], prior: float | None = None) -> DurationSketch:
    sketch = DurationSketch(prior)
    for v in values:
        sketch.add(v)
    return sketch


def uniform(rng: random.Random, mean: float, spread: float, n: int) -> list[float]:
    return [rng.uniform(mean * (1 - spread), mean * (1 + spread)) for _ in range(n)]


def test_quantiles_converge_on_a_known_distribution() -> None:
    rng = random.Random(1)
    sketch = learned(uniform(rng, 320, 0.25, 400), prior=900)
    median = sketch.quantile(0.5)
    low, high = sketch.quantile(0.005), sketch.quantile(0.995)
    assert median is not None and low is not None and high is not None
    assert 304 <= median <= 336  # 5 % bins, decayed memory of ~100 tasks
    assert 225 <= low <= 250
    assert 390 <= high <= 420


def test_the_prior_fades_once_tasks_are_seen() -> None:
    before = DurationSketch(320.0)
    assert before.quantile(0.5) == pytest.approx(320, rel=0.1)
    sketch = learned([100.0] * 10, prior=320.0)
    assert sketch.quantile(0.5) == pytest.approx(100, rel=0.06)
    assert sketch.quantile(0.995) == pytest.approx(100, rel=0.06)


def test_a_drift_is_followed_within_dozens_of_tasks() -> None:
    rng = random.Random(2)
    sketch = learned(uniform(rng, 320, 0.1, 300))
    for v in uniform(rng, 480, 0.1, 60):  # a busy hour: everything takes 1.5x
        sketch.add(v)
    high = sketch.quantile(0.995)
    assert high is not None and high >= 480
    for v in uniform(rng, 480, 0.1, 100):
        sketch.add(v)
    median = sketch.quantile(0.5)
    assert median is not None and median >= 440


def test_nothing_known_means_no_window_and_bad_values_are_ignored() -> None:
    sketch = DurationSketch()
    assert sketch.quantile(0.5) is None
    assert Cadence().window(sketch) is None
    # no window: the interval grows from the last one, within bounds
    assert Cadence().next_delay(sketch, 10.0, 8.0, False) == 12.0
    for bad in (math.nan, math.inf, -5.0):
        sketch.add(bad)
    assert sketch.observed == 0 and sketch.quantile(0.5) is None
    with pytest.raises(ValueError, match="q must be"):
        sketch.quantile(1.5)
    with pytest.raises(ValueError, match="decay"):
        DurationSketch(decay=0.0)


def test_a_sketch_survives_a_round_trip_and_refuses_garbage() -> None:
    rng = random.Random(3)
    sketch = learned(uniform(rng, 120, 0.25, 50), prior=320)
    again = DurationSketch.from_dict(sketch.to_dict())
    for q in (0.005, 0.5, 0.995):
        assert again.quantile(q) == pytest.approx(sketch.quantile(q), rel=1e-4)
    assert again.observed == 50
    for bad in (
        {"counts": {"999": 1.0}},
        {"counts": {"3": -1.0}},
        {"counts": {"3": "nan"}},
        {"counts": []},
        {"counts": {}, "observed": -1},
    ):
        with pytest.raises(ValueError, match=r"bin|count|observed"):
            DurationSketch.from_dict(bad)


def test_the_model_keeps_profiles_apart_and_bounded() -> None:
    model = DurationModel(max_profiles=3)
    pro = profile_key("text2video", {"mode": "pro", "duration": "10", "prompt": "x"})
    assert pro == "text2video mode=pro duration=10"
    assert profile_key("text2video", {}) == "text2video"
    for _ in range(20):
        model.observe(pro, 600.0)
        model.observe("text2video mode=std", 200.0)
    assert model.sketch(pro).quantile(0.5) == pytest.approx(600, rel=0.06)
    assert model.sketch("text2video mode=std").quantile(0.5) == pytest.approx(200, rel=0.06)
    # the kind's sketch learns from both, and a new profile of the kind starts from it
    fresh = model.sketch("text2video mode=pro duration=5")
    assert fresh.observed == 0 and fresh.quantile(0.5) is not None
    assert len(list(model.profiles())) == 3
    model.note("t1", pro)
    assert model.profile_of("t1", "text2video") == pro
    model.forget("t1")
    assert model.profile_of("t1", "text2video") == "text2video"


def test_a_saved_model_restores_warm_and_malformed_data_changes_nothing() -> None:
    model = DurationModel()
    for v in uniform(random.Random(4), 900, 0.25, 40):
        model.observe("video-extend", v)
    restored = DurationModel()
    restored.load(model.to_dict())
    assert restored.sketch("video-extend").observed == 40
    with pytest.raises(ValueError, match="not a saved DurationModel"):
        restored.load({"version": 2, "sketches": {}})
    with pytest.raises(ValueError, match="bad bin"):
        restored.load({"version": 1, "sketches": {"x": {"counts": {"-1": 1}}}})
    assert restored.sketch("video-extend").observed == 40


def simulate(cadence: Cadence, sketch: DurationSketch, duration: float) -> tuple[int, float]:
    """Polls until a task of ``duration`` is seen ended, and how late (s) that was."""
    age, interval, polls = 0.0, 0.0, 0
    while True:
        interval = (
            cadence.first_delay(sketch, age)
            if polls == 0
            else cadence.next_delay(sketch, age, interval, False)
        )
        age += interval
        polls += 1
        if age >= duration:
            return polls, age - duration


@pytest.mark.parametrize("mean", [120.0, 320.0, 900.0])
def test_polls_land_where_the_end_is(mean: float) -> None:
    # Tasks uniform within +-25 % of a mean the built-in prior does not know (320 s for all).
    rng = random.Random(int(mean))
    sketch = learned(uniform(rng, mean, 0.25, 20), prior=320.0)
    cadence = Cadence()
    polls, lags = [], []
    for duration in uniform(rng, mean, 0.25, 2000):
        n, lag = simulate(cadence, sketch, duration)
        polls.append(n)
        lags.append(lag / duration)
        sketch.add(duration)
    lags.sort()
    assert sum(polls) / len(polls) <= 12
    assert lags[int(len(lags) * 0.99)] <= 0.05


def test_an_overdue_task_is_polled_less_and_less() -> None:
    sketch = learned([300.0] * 50)
    cadence = Cadence()
    start, end = cadence.window(sketch) or (0.0, 0.0)
    inside = cadence.next_delay(sketch, (start + end) / 2, 10.0, False)
    late = [cadence.next_delay(sketch, end * 1.5, inside, False)]
    for _ in range(5):
        late.append(cadence.next_delay(sketch, end * 2, late[-1], False))
    assert late == sorted(late) and late[-1] == cadence.max_interval
    assert cadence.next_delay(sketch, 10.0, 5.0, True) == cadence.callback_interval


def test_a_prior_alone_is_polled_coarsely_until_a_task_ends() -> None:
    cadence = Cadence()
    cold = DurationSketch(320.0)
    start, end = cadence.window(cold) or (0.0, 0.0)
    mid = (start + end) / 2
    assert cadence.next_delay(cold, mid, 10.0, False) == pytest.approx(mid * cadence.cold_lag)
    # Past a wrong guess the spacing may grow beyond max_interval, with the task's age.
    late = cadence.next_delay(cold, end * 3, 1000.0, False)
    assert late == pytest.approx(end * 3 * cadence.cold_lag) and late > cadence.max_interval
    warm = learned([320.0], prior=320.0)
    w_start, w_end = cadence.window(warm) or (0.0, 0.0)
    w_mid = (w_start + w_end) / 2
    assert cadence.next_delay(warm, w_mid, 10.0, False) == pytest.approx(w_mid * cadence.lag)
    assert cadence.next_delay(warm, w_end * 3, 100.0, False) == cadence.max_interval
    # A 900-s task on the 320-s prior: far fewer polls than at the dense spacing, seen within
    # the cold spacing of its end.
    dense = Cadence(cold_lag=cadence.lag)
    polls, lag = simulate(cadence, DurationSketch(320.0), 900.0)
    dense_polls, _ = simulate(dense, DurationSketch(320.0), 900.0)
    assert polls <= 0.7 * dense_polls
    assert lag <= 900.0 * cadence.cold_lag * cadence.growth


# -- the scheduler learns, over the emulator ---------------------------------------------------


async def _wave(
    kling: KlingClient, emu: KlingEmulator, clock: FakeClock, n: int
) -> tuple[int, float]:
    """``n`` extends created and watched to their ends: GETs spent, and the worst lag as a
    share of each task's duration (clock time from its end on the server to its change)."""
    seed = emu.add_video()
    gets = requests_to(emu, "get")
    tasks = [await kling.extend_video(seed.video_id) for _ in range(n)]
    seen: dict[str, float] = {}

    async def follow() -> None:
        async for change in kling.watch(tasks):
            if change.is_final:
                seen[change.task_id] = change.at

    consumer = asyncio.ensure_future(follow())
    await run_clock(clock, kling, consumer.done, step=0.5)
    await consumer
    truth = {t.task_id: emu.tasks[t.task_id] for t in tasks}
    worst = max(
        (seen[i] - task.ends_at) / (task.ends_at - task.created_at) for i, task in truth.items()
    )
    return requests_to(emu, "get") - gets, worst


async def test_the_client_learns_a_duration_it_was_not_told(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    # Extends of 120 s +-25 %, where the built-in prior says 320 s.
    emu = await make_emulator(durations=Durations.random(mean_running=115, spread=29, seed=5))
    kling = make_client(emu, max_polls_per_second=None)
    cold_gets, cold_lag = await _wave(kling, emu, clock, 30)
    sketch = kling.scheduler.durations.sketch("video-extend")
    assert sketch.observed == 30
    assert sketch.quantile(0.5) == pytest.approx(120, rel=0.1)
    warm_gets, warm_lag = await _wave(kling, emu, clock, 30)
    # Cold, the gaps grew past the real ends (a 120-s task seen up to ~30 s late); warm, the
    # polls sit where the ends are: every end seen within 5 % of its task, at <= 12 polls.
    assert warm_lag <= 0.05 < cold_lag
    assert warm_gets / 30 <= 12 and cold_gets / 30 <= 12


async def test_each_profile_is_learned_apart(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock
) -> None:
    emu = await make_emulator(
        durations=Durations.per_task(lambda b: (2.0, 600.0 if b.get("mode") == "pro" else 100.0))
    )
    kling = make_client(emu, max_polls_per_second=None)
    tasks = [await kling.text_to_video("a cat", mode=mode) for mode in ("pro", "std") * 3]
    async def drain() -> None:
        async for _ in kling.watch(tasks):
            pass

    drained = asyncio.ensure_future(drain())
    await run_clock(clock, kling, drained.done, step=1.0)
    await drained
    model = kling.scheduler.durations
    pro = model.sketch("text2video mode=pro").quantile(0.5)
    std = model.sketch("text2video mode=std").quantile(0.5)
    assert pro == pytest.approx(602, rel=0.06) and std == pytest.approx(102, rel=0.06)


async def test_a_resumed_batch_starts_warm(
    make_emulator: MakeEmulator, make_client: MakeClient, clock: FakeClock, tmp_path: Path
) -> None:
    emu = await make_emulator(durations=Durations.random(mean_running=895, spread=200, seed=6))
    seed = emu.add_video()
    journal = tmp_path / "batch.sqlite"
    first = make_client(emu, max_polls_per_second=None)
    requests = [{"video_id": seed.video_id, "prompt": f"take {i}"} for i in range(20)]
    await run_batch(clock, first, first.extend_many(requests, journal=journal, slots=20), step=2)
    assert first.scheduler.durations.sketch("video-extend").observed == 20
    # A new process: nothing learned, until the journal is read.
    second = make_client(emu, max_polls_per_second=None)
    assert second.scheduler.durations.sketch("video-extend").observed == 0
    outcomes = await run_batch(clock, second, second.extend_many(requests, journal=journal))
    assert [o.outcome for o in outcomes] == ["succeed"] * 20  # from the journal, nothing sent
    warm = second.scheduler.durations.sketch("video-extend")
    assert warm.observed == 20
    assert warm.quantile(0.5) == pytest.approx(900, rel=0.15)
