"""Grain-growth statistics without MOOSE: reduced units, periodic sizes, the growth law, stationarity, extrapolation.

Every reference is written here independently of ``aiida_multiscale.physics.grain_growth``: hand counts, closed forms,
``scipy.stats.linregress`` and textbook least-squares formulas, a hand-written empirical-CDF distance, pint.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from aiida_multiscale.physics import grain_growth as gg
from aiida_multiscale.physics.units import ureg

pytestmark = pytest.mark.unit


# ----------------------------------------------------------------------------------------------------- reduced units
def test_reduced_units_round_trip_and_dimensions():
    d0, mobility, sigma = 2e-6, 1e-13, 0.5  # m, m^4/(J s), J/m^2
    units = gg.ReducedUnits.from_physical(d0, mobility, sigma)
    # By hand: d0^2 / (M sigma) = 4e-12 / 5e-14 = 80 s.
    assert units.time_scale == pytest.approx(80.0, rel=1e-12)
    assert units.reduced_time(3600.0) == pytest.approx(3600.0 / 80.0, rel=1e-12)
    times = np.array([1.0, 60.0, 3600.0])
    assert np.allclose(units.physical_time(units.reduced_time(times)), times, rtol=1e-14)
    assert units.physical_length(units.reduced_length(7e-6)) == pytest.approx(7e-6, rel=1e-14)
    assert units.physical_rate_constant(units.reduced_rate_constant(3e-14)) == pytest.approx(3e-14, rel=1e-14)
    # k = k_reduced M sigma, and M sigma has the dimension of m^2/s (pint, independently of the module).
    m_sigma = ureg.Quantity(mobility, 'm**4/(J*s)') * ureg.Quantity(sigma, 'J/m**2')
    assert units.physical_rate_constant(1.0) == pytest.approx(m_sigma.to('m**2/s').magnitude, rel=1e-14)

    # The same inputs in other units give the same scale; a wrong dimension is refused with the unit needed.
    other = gg.ReducedUnits.from_physical(
        ureg.Quantity(2.0, 'um'), ureg.Quantity(1e-13 * 1e8, 'cm**4/(J*s)'), ureg.Quantity(500.0, 'mJ/m**2')
    )
    assert other.time_scale == pytest.approx(80.0, rel=1e-12)
    assert units.reduced_time(ureg.Quantity(1.0, 'hour')) == pytest.approx(45.0, rel=1e-12)
    with pytest.raises(ValueError, match=r'mobility must be a quantity convertible to m\*\*4/\(J\*s\)'):
        gg.ReducedUnits.from_physical(d0, ureg.Quantity(1e-13, 'm**2/s'), sigma)
    with pytest.raises(ValueError, match='time must be a quantity convertible to s'):
        units.reduced_time(ureg.Quantity(1.0, 'm'))
    with pytest.raises(ValueError, match='gb_energy must be one positive'):
        gg.ReducedUnits.from_physical(d0, mobility, -0.5)


def test_von_neumann_mullins_limits():
    mobility, sigma = 1e-13, 0.5
    # An isolated circle (no sides) shrinks at -2 pi M sigma; hexagons are stationary; n = 7 grows at pi/3 M sigma.
    assert gg.von_neumann_mullins_rate(0, mobility, sigma) == pytest.approx(-2 * math.pi * mobility * sigma)
    assert gg.von_neumann_mullins_rate(6, mobility, sigma) == 0.0
    assert gg.von_neumann_mullins_rate(7, mobility, sigma) == pytest.approx(math.pi / 3 * mobility * sigma)


# ------------------------------------------------------------------------------------------------------- grain sizes
#: A 6 x 8 periodic map, drawn by hand.  Grain 1 wraps across the left/right edges (columns 7 and 0-1); grain 2 wraps
#: across the top/bottom edges (rows 0 and 5); grain 0 is the rest; -1 is an unassigned pixel.
HAND_MAP = np.array(
    [
        [1, 1, 0, 0, 2, 2, 0, 1],
        [1, 1, 0, 0, 0, 0, 0, 1],
        [1, 0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, -1, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 2, 2, 0, 0],
    ]
)


def test_grain_sizes_of_a_hand_made_periodic_map():
    counts = {1: 2 + 2 + 1 + 3, 2: 2 + 2}  # grain 1: columns 0-1 of rows 0-1, column 0 of row 2, column 7 of rows 0-2
    counts[0] = HAND_MAP.size - 1 - counts[1] - counts[2]  # all the rest but the unassigned pixel
    pixel = 0.5
    sizes = gg.grain_sizes(HAND_MAP, pixel)
    assert sizes.count == 3
    assert sizes.labels.tolist() == [0, 1, 2]
    assert sizes.areas.tolist() == [counts[k] * pixel**2 for k in (0, 1, 2)]
    assert np.allclose(sizes.diameters, [2 * math.sqrt(counts[k] * pixel**2 / math.pi) for k in (0, 1, 2)])
    mean_area = sum(counts.values()) * pixel**2 / 3
    assert sizes.mean_area == pytest.approx(mean_area)
    assert sizes.area_diameter == pytest.approx(math.sqrt(4 * mean_area / math.pi))
    # Splitting labels into periodic connected components keeps the wrapping grains whole.
    assert gg.grain_sizes(HAND_MAP, pixel, split_disconnected=True).areas.tolist() == sizes.areas.tolist()

    # One label on two separate patches (two grains that share an order parameter) counts as two grains when split.
    shared = np.zeros((6, 6), dtype=int)
    shared[1:3, 1:3] = 1  # 4 pixels
    shared[4, 3:6] = 1  # 3 pixels (apart from the first patch, also across the edges)
    split = gg.grain_sizes(shared, 1.0, split_disconnected=True)
    assert sorted(split.areas.tolist()) == [3.0, 4.0, 36.0 - 7.0]
    assert sorted(gg.grain_sizes(shared, 1.0).areas.tolist()) == [7.0, 29.0]
    assert gg.grain_sizes(shared, 1.0, min_pixels=4, split_disconnected=True).count == 2
    with pytest.raises(ValueError, match='integer map'):
        gg.grain_sizes(HAND_MAP.astype(float))


def test_rescaling_keeps_the_topology_and_scales_every_length():
    pixel, target_factor = 1e-7, 3.5
    sizes = gg.grain_sizes(HAND_MAP, pixel)
    ids, new_pixel = gg.rescale_grain_map(HAND_MAP, pixel, target_factor * sizes.area_diameter)
    assert np.array_equal(ids, HAND_MAP)
    assert new_pixel == pytest.approx(target_factor * pixel)
    rescaled = gg.grain_sizes(ids, new_pixel)
    # Areas by hand: the pixel counts of the map times the new pixel area.
    hand_counts = [np.count_nonzero(HAND_MAP == k) for k in (0, 1, 2)]
    assert np.allclose(rescaled.areas, [c * (target_factor * pixel) ** 2 for c in hand_counts])
    _, by_mean = gg.rescale_grain_map(HAND_MAP, pixel, target_factor * sizes.mean_diameter, measure='mean_diameter')
    assert by_mean == pytest.approx(new_pixel)


# -------------------------------------------------------------------------------------------------------- growth law
def _parabolic(k=0.8, d0_sq=1.0, transient=0.6, noise=0.05, n=40, seed=3):
    """d^2 = d0^2 + k tau + a transient (faster growth at first, decaying in 0.5 tau) + Gaussian noise."""
    rng = np.random.default_rng(seed)
    tau = np.linspace(0.0, 10.0, n)
    squared = d0_sq + k * tau + transient * (1 - np.exp(-tau / 0.5)) + rng.normal(0, noise, n)
    return tau, np.sqrt(squared)


def test_growth_law_recovers_k_after_the_transient():
    k_true = 0.8
    tau, d = _parabolic(k=k_true)
    law = gg.fit_growth_law(tau, d)
    assert law.linear
    # The transient (amplitude 0.6 decaying in 0.5 tau) was seen, and where the fit starts it is below the noise.
    assert law.linear_from > 0
    assert 0.6 * math.exp(-law.start_time / 0.5) < 0.05, law.start_time
    assert law.n_points >= 40 // 3  # ... and at least a third of the run is still fitted
    assert abs(law.rate_constant - k_true) < 2 * law.rate_constant_std, (law.rate_constant, law.rate_constant_std)
    # Fitting everything, transient included, misses k by more than twice its own std: the cut matters.
    naive = stats.linregress(tau, d**2)
    assert abs(naive.slope - k_true) > 2 * naive.stderr
    # Without a transient the whole series is linear from the start.
    tau, d = _parabolic(k=k_true, transient=0.0)
    assert gg.fit_growth_law(tau, d).start_index == 0


def test_rate_constant_std_matches_an_independent_least_squares():
    tau, d = _parabolic()
    law = gg.fit_growth_law(tau, d)
    x, y = tau[law.start_index :], d[law.start_index :] ** 2
    reference = stats.linregress(x, y)
    assert law.rate_constant == pytest.approx(reference.slope, rel=1e-10)
    assert law.rate_constant_std == pytest.approx(reference.stderr, rel=1e-8)
    assert law.intercept_std == pytest.approx(reference.intercept_stderr, rel=1e-8)
    # The textbook formulas, once more by hand: s^2 = RSS / (n - 2), std(k) = s / sqrt(Sxx).
    residual = y - (reference.intercept + reference.slope * x)
    s = math.sqrt(residual @ residual / (len(x) - 2))
    assert law.rate_constant_std == pytest.approx(s / math.sqrt(((x - x.mean()) ** 2).sum()), rel=1e-8)


def test_growth_law_refuses_too_few_points_and_flags_no_linear_window():
    with pytest.raises(ValueError, match='too few'):
        gg.fit_growth_law([1, 2, 3], [1, 2, 3])
    # d^2 exponential in time is curved everywhere: no window is linear.
    tau = np.linspace(0, 5, 12)
    law = gg.fit_growth_law(tau, np.exp(tau / 2))
    assert not law.linear


# ----------------------------------------------------------------------------------------------------- extrapolation
def test_extrapolation_from_half_the_run_is_exact_on_parabolic_data():
    k, d0_sq = 0.5, 1.0
    tau = np.linspace(0.0, 20.0, 41)
    d = np.sqrt(d0_sq + k * tau)
    half = tau <= 10.0
    law = gg.fit_growth_law(tau[half], d[half])
    assert law.linear and law.start_index == 0
    full = gg.extrapolate(law, 20.0)
    assert full.size == pytest.approx(math.sqrt(d0_sq + k * 20.0), rel=1e-10)
    assert full.extrapolation_factor == pytest.approx(2.0)
    assert full.extrapolated
    within = gg.extrapolate(law, 6.0)
    assert within.extrapolation_factor == 1.0 and not within.extrapolated
    assert within.size == pytest.approx(math.sqrt(d0_sq + k * 6.0), rel=1e-10)


def test_extrapolation_std_grows_with_the_factor_as_the_textbook_prediction_error():
    rng = np.random.default_rng(11)
    tau = np.linspace(0.0, 10.0, 25)
    d = np.sqrt(1.0 + 0.5 * tau + rng.normal(0, 0.05, tau.size))
    law = gg.fit_growth_law(tau, d)
    assert law.linear
    x, y = tau[law.start_index :], d[law.start_index :] ** 2
    fit = stats.linregress(x, y)
    s = math.sqrt(((y - fit.intercept - fit.slope * x) ** 2).sum() / (len(x) - 2))
    sxx = ((x - x.mean()) ** 2).sum()
    stds = []
    for factor in (1.0, 2.0, 4.0, 8.0):
        result = gg.extrapolate(law, factor * tau[-1])
        assert result.extrapolation_factor == pytest.approx(factor)
        # Std of the fitted mean of y at t: s sqrt(1/n + (t - <t>)^2 / Sxx); of d = sqrt(y): divided by 2 d.
        t = factor * tau[-1]
        d_fit = math.sqrt(fit.intercept + fit.slope * t)
        expected = s * math.sqrt(1 / len(x) + (t - x.mean()) ** 2 / sxx) / (2 * d_fit)
        assert result.size_std == pytest.approx(expected, rel=1e-8)
        # ... and the true size of the law the data were drawn from lies within 2 of those stds.
        assert abs(result.size - math.sqrt(1.0 + 0.5 * t)) < 2 * result.size_std
        stds.append(result.size_std)
    assert all(b > a for a, b in zip(stds, stds[1:]))


# ---------------------------------------------------------------------------------------------------- self-similarity
def _ecdf_distance(a, b):
    """The two-sample KS distance by hand: the largest gap between the empirical CDFs over all sample points."""
    points = np.concatenate([a, b])
    cdf_a = np.array([np.count_nonzero(a <= p) for p in points]) / len(a)
    cdf_b = np.array([np.count_nonzero(b <= p) for p in points]) / len(b)
    return float(np.max(np.abs(cdf_a - cdf_b)))


def _frames(shapes, means, counts, seed):
    """Log-normal grain diameters, one frame per (shape, mean, count)."""
    rng = np.random.default_rng(seed)
    return [mean * rng.lognormal(0.0, shape, count) for shape, mean, count in zip(shapes, means, counts)]


def test_kolmogorov_threshold_against_the_tables():
    # c(alpha) of the two-sample test: 1.36 at 5 %, 1.63 at 1 % (e.g. Smirnov's tables as quoted in textbooks).
    assert gg.ks_threshold(1, 1, 0.05) / math.sqrt(2) == pytest.approx(1.358, abs=1e-3)
    assert gg.ks_threshold(1, 1, 0.01) / math.sqrt(2) == pytest.approx(1.628, abs=1e-3)
    assert gg.ks_threshold(100, 100, 0.05) > gg.ks_threshold(400, 400, 0.05)


def test_stationarity_passes_for_a_fixed_shape_and_fails_when_the_shape_changes():
    n = 8
    means = np.linspace(1.0, 3.0, n)  # the mean grows, the shape stays: self-similar
    counts = (400 / means**2).astype(int)  # fewer grains as they grow (constant box area)
    fixed = gg.stationarity(_frames([0.35] * n, means, counts, seed=5))
    assert fixed.stationary, fixed.distances / fixed.thresholds
    assert fixed.statistic <= 1
    changing = gg.stationarity(_frames(np.linspace(0.15, 0.6, n), means, counts, seed=5))
    assert not changing.stationary
    assert changing.statistic > 1

    # The distance is the KS distance between the normalised frames (reference: hand-written empirical CDFs).
    frames = _frames([0.35, 0.5], [1.0, 2.0], [150, 120], seed=9)
    test = gg.stationarity(frames)
    assert test.distances[0] == pytest.approx(_ecdf_distance(*(f / f.mean() for f in frames)), abs=1e-12)
    assert test.counts.tolist() == [150, 120]
    # Pooled windows: the threshold uses the mean grain count per frame, with the Bonferroni-corrected alpha (three
    # comparisons: 0-1, 1-2 and first-last).
    pooled = gg.stationarity(_frames([0.35] * 6, np.ones(6), [100] * 6, seed=2), n_windows=3, alpha=0.05)
    assert pooled.pairs == [(0, 1), (1, 2), (0, 2)]
    c = math.sqrt(-math.log(0.05 / 3 / 2) / 2)
    assert pooled.thresholds == pytest.approx([c * math.sqrt(2 / 100)] * 3)


def test_self_similarity_verdict():
    tau = np.linspace(0.0, 8.0, 10)
    mean_area = 1.0 + 0.9 * tau
    counts = (300 / mean_area).astype(int)
    rng = np.random.default_rng(21)
    # Areas with a fixed log-normal shape (normalised to the mean area): self-similar.
    shape = 0.6
    areas = [a * rng.lognormal(-(shape**2) / 2, shape, c) for a, c in zip(mean_area, counts)]
    verdict = gg.self_similarity(tau, areas)
    assert verdict.self_similar, verdict.reason
    assert verdict.law.rate_constant == pytest.approx(4 * 0.9 / math.pi, rel=0.15)  # d^2 = 4 <A> / pi
    # The same mean areas, but the shape broadens with time: not self-similar, and the reason says why.
    broadening = [
        a * rng.lognormal(-(s**2) / 2, s, c) for a, c, s in zip(mean_area, counts, np.linspace(0.2, 1.0, tau.size))
    ]
    verdict = gg.self_similarity(tau, broadening)
    assert not verdict.self_similar
    assert 'distribution still changes' in verdict.reason


@pytest.mark.parametrize('dimension', [2, 3])
def test_hillert_distribution_is_normalised_with_hillerts_mean(dimension):
    norm = integrate.quad(lambda r: gg.hillert_distribution(r, dimension), 0, 2.5, limit=200)[0]
    mean = integrate.quad(lambda r: r * gg.hillert_distribution(r, dimension), 0, 2.5, limit=200)[0]
    assert norm == pytest.approx(1.0, abs=1e-8)
    # The density is of R/<R>, so its mean is 1; in 3-D that holds only with Hillert's <R> = 8/9 R_cr.
    assert mean == pytest.approx(1.0, abs=1e-8)
    # Cut-off at R = 2 R_cr: 2 <R> in 2-D (R_cr = <R>), 9/4 <R> in 3-D.
    cutoff = 2.0 if dimension == 2 else 2.25
    assert gg.hillert_distribution(cutoff * 1.001, dimension) == 0.0
    assert gg.hillert_distribution(cutoff * 0.9, dimension) > 0.0


def test_arrhenius_mobility_std_is_the_first_order_spread_of_ln_m():
    """The relative std of M = M0 exp(-Q/kT) against central differences of ln M, written out here."""
    from aiida_multiscale.physics.grain_growth import arrhenius_mobility_and_std

    k_b = 8.617333262e-5  # eV/K, CODATA 2018
    m0, q, temperature = 2.5e-6, 0.23, 560.0
    stds = {'m0': 0.3 * m0, 'q': 0.05, 'temperature': 5.0}
    mobility, relative = arrhenius_mobility_and_std(
        m0,
        q,
        temperature,
        prefactor_std=stds['m0'],
        activation_energy_std=stds['q'],
        temperature_std=stds['temperature'],
    )
    assert mobility == pytest.approx(m0 * np.exp(-q / (k_b * temperature)), rel=1e-9)

    def ln_m(values):
        return np.log(values['m0']) - values['q'] / (k_b * values['temperature'])

    base = {'m0': m0, 'q': q, 'temperature': temperature}
    variance = 0.0
    for name, std in stds.items():
        step = 1e-6 * base[name]
        up, down = dict(base, **{name: base[name] + step}), dict(base, **{name: base[name] - step})
        variance += ((ln_m(up) - ln_m(down)) / (2 * step) * std) ** 2
    assert relative == pytest.approx(np.sqrt(variance), rel=1e-6)
    # no std given: exact
    assert arrhenius_mobility_and_std(m0, q, temperature)[1] == 0.0
