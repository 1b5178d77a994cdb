"""The phase-field rung's verdict on a realisation (pure functions of its frames) on synthetic statistics: which frame
is handed on, when the law extrapolates, when nothing honest can be handed on, when a realisation stops."""

from __future__ import annotations

import math

import numpy as np
import pytest
from aiida import orm

from aiida_multiscale.workflows.functions.phase_field import (
    join_frames,
    judge_realisation,
    parameters_with_defaults,
    realisation_done,
)

K_REDUCED = 2.7  # d0^2 per unit reduced time, about what the model gives (docs/phase_field.md)


def _cycle(times, grains0=200, seed=0, k=K_REDUCED, stationary=True):
    """``analyse_cycle``-like statistics: at each time the mean area follows d^2 = 1 + k t (area diameter), the
    grains a fixed log-normal shape (self-similar) or one that narrows in time (not stationary)."""
    rng = np.random.default_rng(seed)
    node = orm.ArrayData()
    counts, means, flat = [], [], []
    for t in times:
        mean_area = math.pi / 4 * (1 + k * t)
        count = max(int(round(grains0 / (1 + k * t))), 2)
        width = 0.5 if stationary else 0.9 / (1 + 3 * t)
        areas = rng.lognormal(0.0, width, count)
        areas *= mean_area / areas.mean()
        counts.append(count)
        means.append(mean_area)
        flat.append(areas)
    node.set_array('time', np.asarray(times, dtype=float))
    node.set_array('grain_count', np.asarray(counts, dtype=float))
    node.set_array('mean_area', np.asarray(means))
    node.set_array('mean_intercept_length', np.zeros(len(times)))
    node.set_array('merges', np.zeros(len(times)))
    node.set_array('areas', np.concatenate(flat))
    node.set_array('pixel_size', np.array([0.05]))
    node.set_array('grain_ids', np.zeros((len(times), 2, 2), dtype=np.int32))
    return node


def _frames(end=1.0, n=24, **kwargs):
    times = np.linspace(end / n, end, n)
    half = n // 2
    return join_frames([_cycle(times[:half], **kwargs), _cycle(times[half:], seed=1, **kwargs)])


def test_frames_are_joined_in_order(aiida_profile):
    frames = _frames()
    assert len(frames.times) == 24 and np.all(np.diff(frames.times) > 0)
    assert len(frames.areas) == 24 and all(len(a) == c for a, c in zip(frames.areas, frames.counts))
    assert frames.index[12] == (1, 0)


def test_within_the_run_the_nearest_frame_is_handed_on(aiida_profile):
    frames = _frames()
    verdict = judge_realisation(frames, min_grains=25, requested_time=0.52)
    assert verdict.error is None and verdict.extrapolation is None
    assert frames.times[verdict.frame] == pytest.approx(0.5)  # frames every 1/24: 0.5 is the nearest to 0.52


def test_beyond_the_run_the_law_extrapolates(aiida_profile):
    """The fitted k is the synthetic one within its std; the factor is requested / simulated; the predicted size is
    sqrt(1 + k t) at the requested time (computed here)."""
    frames = _frames()
    verdict = judge_realisation(frames, min_grains=25, requested_time=10.0)
    assert verdict.error is None and verdict.self_similar
    law = verdict.similarity.law
    assert law.rate_constant == pytest.approx(K_REDUCED, abs=3 * law.rate_constant_std + 1e-9)
    assert verdict.extrapolation.extrapolation_factor == pytest.approx(10.0 / verdict.simulated_time)
    assert verdict.extrapolation.size == pytest.approx(math.sqrt(1 + K_REDUCED * 10.0), rel=0.02)
    assert verdict.frame == verdict.usable - 1


def test_frames_below_min_grains_are_not_used(aiida_profile):
    """200 grains at d^2 = 1 fall to 200 / (1 + k t): below 100 after t = 1/k; those frames are beyond the usable."""
    frames = _frames()
    verdict = judge_realisation(frames, min_grains=100, requested_time=10.0)
    assert verdict.simulated_time <= 1 / K_REDUCED + 1 / 24
    assert all(frames.counts[: verdict.usable] >= 100) and frames.counts[verdict.usable] < 100


def test_not_self_similar_is_not_extrapolated(aiida_profile):
    """A size distribution that keeps narrowing is not stationary: nothing is extrapolated, the error says why and
    what to change."""
    frames = _frames(stationary=False, grains0=2000)
    verdict = judge_realisation(frames, min_grains=25, requested_time=10.0)
    assert verdict.extrapolation is None and not verdict.self_similar
    assert 'not self-similar' in verdict.error and 'the normalised size distribution still changes' in verdict.error
    assert 'parameters.grains' in verdict.error
    # Within the run the frame is simulated, so it is handed on all the same.
    assert judge_realisation(frames, min_grains=25, requested_time=0.3).error is None


def test_when_a_realisation_stops(aiida_profile):
    parameters = parameters_with_defaults({'min_grains': 25, 'max_cycles': 8})
    frames = _frames()
    assert realisation_done(frames, parameters, requested_time=0.5, cycles=2) == (
        True,
        'the requested time is reached and the growth is self-similar',
    )
    assert realisation_done(frames, parameters, requested_time=50.0, cycles=2) == (False, '')
    assert realisation_done(frames, parameters, requested_time=50.0, cycles=8)[1] == 'max_cycles = 8 reached'
    few = _frames(grains0=40)
    done, why = realisation_done(few, parameters, requested_time=50.0, cycles=2)
    assert done and 'fewer than min_grains = 25' in why
