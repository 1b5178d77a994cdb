"""The fem_to_macro bridge with crystal plasticity: the Sachs-Taylor check and the variance budget.

The mechanics node is written by hand (as the FEM rung would), so that each number of the budget can be worked out
here from the growth law and Hall-Petch, apart from the package.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from aiida_multiscale.bridges import BRIDGE_EXIT_CODES
from aiida_multiscale.bridges.fem_to_macro import fem_to_macro
from aiida_multiscale.bridges.mesoscale_to_fem import grain_size_terms
from aiida_multiscale.data.handoff import HandoffData
from aiida_multiscale.data.microstructure import MicrostructureData
from aiida_multiscale.workflows.functions.plasticity import make_plasticity_assumptions

#: Hand-made derivatives of the yield strength [Pa per unit, or Pa per ln unit]: the Hall-Petch ones of T/M_r = 1.
SENSITIVITIES = {
    'friction_stress': [1.0, False, 'test'],
    'hall_petch_coefficient': [250.0, False, 'test'],  # <d^-1/2> = 250 m^-1/2 (d = 16 um)
    'taylor_factor_random': [-40e6 / 3.06, False, 'test'],
    'mean_grain_size': [-0.5 * 0.04e6 * 250.0, True, 'test'],
    'hardening_modulus': [1.0e6, True, 'test'],
    'saturation_strength': [0.5e6, True, 'test'],
    'hardening_exponent': [-0.3e6, True, 'test'],
    'latent_hardening_ratio': [1.0e6, False, 'test'],
    'rate_sensitivity': [-0.4e6, True, 'test'],
}


def _q(value, unit='Pa', std=None):
    return {'value': value, 'unit': unit, 'std': std, 'note': 'test'}


def _mechanics(yield_mpa=40.0, sachs_mpa=30.0, taylor_mpa=45.0, realisations=(40.0,)):
    quantities = {
        'youngs_modulus': _q(70.5e9),
        'poisson_ratio': _q(0.345, 'dimensionless'),
        'youngs_modulus_voigt': _q(71.0e9),
        'youngs_modulus_reuss': _q(70.0e9),
        'yield_strength': _q(yield_mpa * 1e6),
        'yield_strength_sachs': _q(sachs_mpa * 1e6),
        'yield_strength_taylor': _q(taylor_mpa * 1e6),
        'flow_stress': _q(yield_mpa * 1e6 + 10e6),
        'taylor_factor': _q(3.0, 'dimensionless'),
        'grain_count': _q(20, 'dimensionless'),
    }
    rows = [{'yield_strength': value * 1e6} for value in realisations]
    return HandoffData(quantities, metadata={'yield_sensitivities': SENSITIVITIES, 'realisations': rows})


def _grains(size=16e-6, initial=8e-6, mobility_ln_std=2.3):
    interface = HandoffData({
        'gb_mobility': _q(1e-13, 'm**4/(J*s)', mobility_ln_std * 1e-13),
        'gb_energy': _q(0.4, 'J/m**2', 0.04),
        'anneal_time': _q(3600.0, 's'),
    }).store()  # fmt: skip
    terms = grain_size_terms(size, initial, interface)
    growth = (size**2 - initial**2) / (2 * size**2)
    std = size * growth * math.hypot(mobility_ln_std, 0.1)
    grains = HandoffData(
        {'mean_grain_size': _q(size, 'm', std), 'grain_count': _q(20, 'dimensionless')},
        metadata={'ln_grain_size_terms': terms},
    )
    return grains, interface


def test_yield_outside_sachs_taylor_is_refused(aiida_profile):
    _, node = fem_to_macro.run_get_node(mechanics=_mechanics(yield_mpa=50.0))
    assert node.exit_status == BRIDGE_EXIT_CODES['ERROR_FEM_TO_MACRO_YIELD_OUTSIDE_BOUNDS'][0] == 342
    assert 'yield strength 50 MPa, Sachs 30 MPa, Taylor 45 MPa' in node.exit_message


def test_budget_of_the_yield_strength(aiida_profile):
    """Each term worked out by hand: the assumptions' stds (ln std x value for the ln ones) times the derivatives,
    and the grain size's terms through the growth law (d ln d / d ln M = (d^2 - d0^2) / 2 d^2 = 3/8) and Hall-Petch."""
    grains, interface = _grains()
    assumptions = make_plasticity_assumptions('Al').store()
    result = fem_to_macro(mechanics=_mechanics(), grains=grains, assumptions=assumptions)
    macro = result['macro']
    budgets = {entry['macro_quantity']: entry for entry in macro.metadata['variance_budget']}
    entries = {entry['quantity']: entry for entry in budgets['yield_strength']['entries']}
    # Al assumptions (plasticity.yaml): sigma_0 16 MPa ln std 0.3; k 0.04 MPa m^0.5 ln std 0.3; M_r 3.06 std 0.1
    expected = {
        'friction_stress': (1.0 * 0.3 * 16e6) ** 2,
        'hall_petch_coefficient': (250.0 * 0.3 * 0.04e6) ** 2,
        'taylor_factor_random': (40e6 / 3.06 * 0.1) ** 2,
        'gb_mobility': (0.5 * 0.04e6 * 250.0 * 3 / 8 * 2.3) ** 2,
        'gb_energy': (0.5 * 0.04e6 * 250.0 * 3 / 8 * 0.1) ** 2,
        'hardening_modulus': (1.0e6 * 0.5) ** 2,
        'latent_hardening_ratio': (1.0e6 * 0.4) ** 2,
    }
    for name, variance in expected.items():
        assert entries[name]['variance'] == pytest.approx(variance, rel=1e-9), name
    assert entries['gb_mobility']['uuid'] == interface.uuid and entries['friction_stress']['uuid'] == assumptions.uuid
    assert entries['realisations']['share'] is None  # one realisation: the spread is not estimated
    total = sum(entry['variance'] for entry in entries.values() if entry['variance'] is not None)
    assert macro['yield_strength'].std == pytest.approx(math.sqrt(total), rel=1e-12)
    assert sum(entry['share'] for entry in entries.values() if entry['share'] is not None) == pytest.approx(1.0)
    # the weakest input overall is the one with the largest share of any macro quantity
    best = max(
        (e['share'], b['macro_quantity'], e['quantity']) for b in budgets.values() for e in b['entries']
         if e['share'] is not None
    )  # fmt: skip
    weakest = macro.metadata['weakest']
    assert (weakest['share'], weakest['macro_quantity'], weakest['quantity']) == best
    # the mean grain size's own budget: its std is the grains handoff's (growth law)
    assert budgets['mean_grain_size']['std'] == pytest.approx(grains['mean_grain_size'].std, rel=1e-12)


def test_spread_over_realisations_is_a_term(aiida_profile):
    """Three realisations: the sampling term is the standard error of their yield strengths."""
    values = (38.0, 40.0, 43.0)
    result = fem_to_macro(mechanics=_mechanics(realisations=values))
    budget = {e['macro_quantity']: e for e in result['macro'].metadata['variance_budget']}['yield_strength']
    (entry,) = [e for e in budget['entries'] if e['quantity'] == 'realisations']
    assert entry['amplitude'] == pytest.approx(np.std(values, ddof=1) / math.sqrt(3) * 1e6, rel=1e-12)
    assert entry['uuid'] is None and entry['share'] == 1.0  # no assumptions given: the spread is all there is


def test_youngs_modulus_budget_shares_follow_the_constants(aiida_profile):
    """A single cube-oriented grain: E = E_100 does not depend on C44, so C44 has no share whatever its std."""
    single = MicrostructureData(grain_ids=np.zeros((4, 4), dtype=int), pixel_size=1e-6, euler_angles=[[0, 0, 0]])
    c11, c12 = 110e9, 60e9
    e100 = (c11 - c12) * (c11 + 2 * c12) / (c11 + c12)
    elastic = HandoffData({
        'c11': _q(c11, 'Pa', 1e9), 'c12': _q(c12, 'Pa', 1e9), 'c44': _q(30e9, 'Pa', 10e9)
    })  # fmt: skip
    mechanics = HandoffData({
        'youngs_modulus': _q(e100), 'poisson_ratio': _q(c12 / (c11 + c12), 'dimensionless'),
        'youngs_modulus_voigt': _q(e100), 'youngs_modulus_reuss': _q(e100),
    })  # fmt: skip
    result = fem_to_macro(mechanics=mechanics, elastic=elastic, microstructure=single)
    budget = {e['macro_quantity']: e for e in result['macro'].metadata['variance_budget']}['youngs_modulus']
    shares = {e['quantity']: e['share'] for e in budget['entries']}
    assert shares['c44'] == pytest.approx(0.0, abs=1e-9)
    # dE/dC11 and dE/dC12 of E_100, by hand
    d11 = ((c11 + 2 * c12) * (c11 + c12) + (c11 - c12) * (c11 + c12) - (c11 - c12) * (c11 + 2 * c12)) / (c11 + c12) ** 2
    d12 = ((-(c11 + 2 * c12) + 2 * (c11 - c12)) * (c11 + c12) - (c11 - c12) * (c11 + 2 * c12)) / (c11 + c12) ** 2
    assert shares['c11'] == pytest.approx(d11**2 / (d11**2 + d12**2), rel=1e-5)


def test_too_few_grains_are_flagged_not_hidden(aiida_profile):
    """A map of 4 grains is handed on (the chain can still run), but its grain count says it is not a polycrystal."""
    from aiida_multiscale.bridges.mesoscale_to_fem import MIN_GRAINS_FOR_STATISTICS, mesoscale_to_fem

    ids = np.repeat(np.repeat(np.arange(4).reshape(2, 2), 10, axis=0), 10, axis=1)
    micro = MicrostructureData(grain_ids=ids, pixel_size=1e-7, euler_angles=np.zeros((4, 3)))
    elastic = HandoffData({name: _q(value, 'GPa', 1.0) for name, value in (('c11', 110), ('c12', 60), ('c44', 30))})
    grains = mesoscale_to_fem(microstructure=micro, elastic=elastic)['grains']
    assert MIN_GRAINS_FOR_STATISTICS == 25 and grains.value('grain_count') == 4
    assert grains.metadata['checks']['enough_grains'] == 'warning: 4 < 25 grains'
    assert 'too few for polycrystal statistics' in grains['grain_count'].note


def test_mesh_error_law_against_the_benchmark_series():
    """The coefficient against a straight-line fit written here of the benchmark's yields (docs/fem.md) on 1/n."""
    from aiida_multiscale.physics.plasticity import mesh_discretisation_error

    per_grain = np.array([4.0, 9.0, 16.0, 25.0])
    yields = np.array([22.95, 22.78, 22.57, 22.54])  # MPa, benchmarks/fem.py --plasticity, 9-grain Al map
    slope, converged = np.polyfit(1 / per_grain, yields, 1)
    assert np.max(np.abs(yields - (converged + slope / per_grain))) < 0.1  # the law holds to the series' noise
    for n in (4.0, 9.0, 36.0):
        assert mesh_discretisation_error(n) == pytest.approx(slope / converged / n, rel=0.02)
    with pytest.raises(ValueError, match='must be positive'):
        mesh_discretisation_error(0)


def test_discretisation_is_a_term_of_the_yield_not_of_its_estimates(aiida_profile):
    """Realisations at 4 and 9 elements per grain: the term's std is the mean of 0.088/4 and 0.088/9 in ln units,
    on the yield and the flow stress; the Sachs and Taylor estimates (no mesh) have none."""
    mechanics = _mechanics(realisations=(40.0, 41.0))
    rows = [
        {'yield_strength': 40e6, 'discretisation_relative_error': 0.088 / 4, 'elements_per_grain': 4.0},
        {'yield_strength': 41e6, 'discretisation_relative_error': 0.088 / 9, 'elements_per_grain': 9.0},
    ]
    mechanics = HandoffData(
        {name: mechanics[name].as_dict() for name in mechanics.names},
        metadata={'yield_sensitivities': SENSITIVITIES, 'realisations': rows},
    )
    result = fem_to_macro(mechanics=mechanics)
    budgets = {entry['macro_quantity']: entry for entry in result['macro'].metadata['variance_budget']}
    relative = (0.088 / 4 + 0.088 / 9) / 2
    for name, value in (('yield_strength', 40e6), ('flow_stress', 50e6)):
        (entry,) = [e for e in budgets[name]['entries'] if e['quantity'] == 'discretisation']
        assert entry['log'] and entry['std'] == pytest.approx(relative, rel=1e-12)
        assert entry['amplitude'] == pytest.approx(value * relative, rel=1e-12)
        assert entry['uuid'] is None and '4-9 elements per grain' in entry['note']
    for name in ('yield_strength_sachs', 'yield_strength_taylor'):
        assert all(e['quantity'] != 'discretisation' for e in budgets.get(name, {'entries': []})['entries'])
