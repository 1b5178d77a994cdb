"""The variance budget (physics.variance) and the yield strength's derivatives against independent references.

The budget's std is checked against the std of a Monte-Carlo sample of the same linear model (a second method); its
chain rule against the derivative of the composed function; the yield sensitivities against finite differences of a
Hall-Petch/Kalidindi model written here; the ln-unit terms of the grain size against the growth law's exact std.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from aiida_multiscale.physics import variance
from aiida_multiscale.physics.plasticity import hardening_increment, yield_strength_sensitivities


def test_budget_of_a_linear_model_matches_monte_carlo():
    """y = 3 a - 2 ln(b) + c: the budget's std and shares against a 200,000-sample Monte Carlo."""
    rng = np.random.default_rng(0)
    a, b, c = 1.0, 5.0, 2.0
    std_a, ln_std_b, std_c = 0.1, 0.3, 0.05
    terms = [
        variance.term('A', 'a', 3.0, std_a, log=False),
        variance.term('B', 'b', -2.0, ln_std_b, log=True),
        variance.term('C', 'c', 1.0, std_c, log=False),
        variance.term('D', 'd', None, 1.0, log=False, note='derivative not computed'),
    ]
    result = variance.budget('y', 3 * a - 2 * math.log(b) + c, terms)
    n = 200_000
    sample = 3 * rng.normal(a, std_a, n) - 2 * (math.log(b) + rng.normal(0, ln_std_b, n)) + rng.normal(c, std_c, n)
    assert result['std'] == pytest.approx(sample.std(), rel=0.01)
    shares = {entry['quantity']: entry['share'] for entry in result['entries']}
    # the variance of each part of the sample over the total, by hand
    assert shares['b'] == pytest.approx(0.36 / (0.09 + 0.36 + 0.0025), rel=1e-12)
    assert [entry['quantity'] for entry in result['entries']] == ['b', 'a', 'c', 'd']
    assert shares['d'] is None and sum(s for s in shares.values() if s) == pytest.approx(1.0)
    assert variance.weakest([result]) == {'uuid': 'B', 'quantity': 'b', 'macro_quantity': 'y', 'share': shares['b']}


def test_weakest_is_by_share_not_by_relative_std():
    """An input uncertain by a factor 10 that the answer hardly depends on is not the weakest."""
    wild = variance.term('M', 'gb_mobility', 1e-3, 2.3, log=True)  # ln std 2.3: one decade
    tame = variance.term('C', 'c44', 1.0, 0.5, log=False)
    budget = variance.budget('youngs_modulus', 70.0, [wild, tame])
    assert variance.weakest([budget])['quantity'] == 'c44'


def test_chain_rule_and_spread():
    """Terms of ln d carried into y = k / sqrt(d): dy/d ln d = -y/2; the spread is the standard error of the mean."""
    d, k = 20e-6, 0.04e6
    ln_terms = [variance.term('I', 'gb_mobility', 0.45, 2.3, log=True)]
    carried = variance.chain_terms(ln_terms, -0.5 * k / math.sqrt(d), 'Hall-Petch')
    # the same by finite differences of y(ln d) = k exp(-ln d / 2)
    h = 1e-6
    slope = (k * math.exp(-(math.log(d) + h) / 2) - k * math.exp(-(math.log(d) - h) / 2)) / (2 * h)
    assert carried[0]['amplitude'] == pytest.approx(slope * 0.45 * 2.3, rel=1e-6)
    assert carried[0]['note'].startswith('through Hall-Petch')
    spread = variance.spread_term([1.0, 2.0, 4.0])
    assert spread['amplitude'] == pytest.approx(np.std([1.0, 2.0, 4.0], ddof=1) / math.sqrt(3))
    assert variance.spread_term([1.0])['amplitude'] is None


def _yield_model(s0, k, m_random, taylor, sizes, weights, h0, t_sat, a, xm, eps_dot, a0, offset=0.002, theta=None):
    """sigma_y = T <(s0 + k/sqrt(d))/M> (rate factor)^xm + hardening at the offset, written apart from the package.

    The hardening reached at the offset is the aggregate's rate T^2 h(tau) (tau the mean slip resistance, Kalidindi
    h = h0 (1 - tau/t_sat)^a) over the offset, scaled so that it equals ``theta`` at the reference values.
    """
    tau = np.sum(weights * (s0 + k / np.sqrt(sizes)) / m_random) / np.sum(weights)
    rate = (eps_dot * taylor / (5 * a0)) ** xm
    hardening = theta * (h0 * (1 - tau / t_sat) ** a)
    return taylor * tau * rate + hardening


def test_yield_sensitivities_match_finite_differences():
    rng = np.random.default_rng(3)
    sizes, weights = rng.uniform(5e-6, 40e-6, 12), rng.uniform(0.5, 1.5, 12)
    ref = dict(s0=16e6, k=0.04e6, m_random=3.06, taylor=2.9, sizes=sizes, weights=weights, h0=60e6, t_sat=60e6,
               a=2.25, xm=0.012, eps_dot=1e-3, a0=1e-3)  # fmt: skip
    tau = np.sum(weights * (ref['s0'] + ref['k'] / np.sqrt(sizes)) / ref['m_random']) / np.sum(weights)
    increment = 0.6e6  # Pa of hardening reached at the offset
    theta = increment / (ref['h0'] * (1 - tau / ref['t_sat']) ** ref['a'])
    value = _yield_model(**ref, theta=theta)
    derivatives = yield_strength_sensitivities(
        yield_strength=value - increment,  # the flow-rule part: the hardening enters through its own terms
        rve_taylor_factor=ref['taylor'] * (ref['eps_dot'] * ref['taylor'] / (5 * ref['a0'])) ** ref['xm'],
        taylor_factor_random=ref['m_random'], hall_petch_coefficient=ref['k'],
        mean_inverse_sqrt_size=float(np.sum(weights / np.sqrt(sizes)) / np.sum(weights)),
        hardening_increment=increment, tau_c_mean=tau, saturation_strength=ref['t_sat'],
        hardening_exponent=ref['a'], rate_sensitivity=ref['xm'],
        rate_argument=ref['eps_dot'] * ref['taylor'] / (5 * ref['a0']),
    )  # fmt: skip

    def fd(name, log):
        h = 1e-5
        up, down = dict(ref), dict(ref)
        if name == 'sizes':
            up['sizes'], down['sizes'] = sizes * math.exp(h), sizes * math.exp(-h)
            return (_yield_model(**up, theta=theta) - _yield_model(**down, theta=theta)) / (2 * h)
        x = ref[name]
        step = h * x
        up[name], down[name] = x + step, x - step
        slope = (_yield_model(**up, theta=theta) - _yield_model(**down, theta=theta)) / (2 * step)
        return slope * x if log else slope

    # The Hall-Petch part is exact (tau shifts move the hardening part only through h(tau): excluded by holding the
    # hardening rate at the reference tau, so compare with the model without its hardening term's tau-dependence).
    for name, model_name, log in (
        ('hardening_modulus', 'h0', True),
        ('saturation_strength', 't_sat', True),
        ('hardening_exponent', 'a', True),
        ('rate_sensitivity', 'xm', True),
    ):
        assert derivatives[name][0] == pytest.approx(fd(model_name, log), rel=1e-3), name
    no_hardening = dict(ref, h0=0.0)

    def fd0(name, scale_sizes=False):
        h = 1e-5
        up, down = dict(no_hardening), dict(no_hardening)
        if scale_sizes:
            up['sizes'], down['sizes'] = sizes * math.exp(h), sizes * math.exp(-h)
            return (_yield_model(**up, theta=theta) - _yield_model(**down, theta=theta)) / (2 * h)
        x = no_hardening[name]
        up[name], down[name] = x * (1 + h), x * (1 - h)
        return (_yield_model(**up, theta=theta) - _yield_model(**down, theta=theta)) / (2 * h * x)

    assert derivatives['friction_stress'][0] == pytest.approx(fd0('s0'), rel=1e-6)
    assert derivatives['hall_petch_coefficient'][0] == pytest.approx(fd0('k'), rel=1e-6)
    assert derivatives['taylor_factor_random'][0] == pytest.approx(fd0('m_random'), rel=1e-6)
    assert derivatives['mean_grain_size'][0] == pytest.approx(fd0(None, scale_sizes=True), rel=1e-6)


def test_hardening_increment_of_a_bilinear_curve():
    """A curve with slope 2 GPa past yield: 2 GPa x 0.002 = 4 MPa; a softening curve gives 0."""
    strain = np.linspace(0, 0.01, 101)
    stress = np.where(strain < 0.001, 70e9 * strain, 70e6 + 2e9 * (strain - 0.001))
    assert hardening_increment(strain, stress, 0.0029) == pytest.approx(4e6, rel=1e-9)
    assert hardening_increment(strain, 100e6 - 1e9 * strain, 0.003) == 0.0
