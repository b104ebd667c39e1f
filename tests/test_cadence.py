"""The learned cadence: duration sketches, and where polls land for a known distribution."""

from __future__ import annotations

import math
import random

import pytest

from kling_async.cadence import Cadence
from kling_async.durations import DurationModel, DurationSketch, profile_key


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
