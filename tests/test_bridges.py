"""Bridges with hand-made HandoffData: units, first-order std against analytic formulas, each physics exit code."""

from __future__ import annotations

import math

import numpy as np
import pytest
from aiida import orm
from references import e_100, youngs_bounds

from aiida_multiscale.bridges import BRIDGE_EXIT_CODES
from aiida_multiscale.bridges.dft_to_md import dft_to_md
from aiida_multiscale.bridges.fem_to_macro import fem_to_macro
from aiida_multiscale.bridges.md_to_mesoscale import make_assumptions, md_to_mesoscale
from aiida_multiscale.bridges.mesoscale_to_fem import mesoscale_to_fem
from aiida_multiscale.data.handoff import HandoffData
from aiida_multiscale.data.microstructure import MicrostructureData
from aiida_multiscale.physics.elasticity import born_stability_violations as born_violations
from aiida_multiscale.physics.elasticity import e100 as single_crystal_youngs_100
from aiida_multiscale.physics.elasticity import voigt_reuss_hill as polycrystal_moduli
from aiida_multiscale.physics.uncertainty import first_order_std

#: Boltzmann constant in eV/K from the exact SI values of k (1.380649e-23 J/K) and e (1.602176634e-19 C), written here
#: rather than taken from the code under test.
BOLTZMANN_EV = 1.380649e-23 / 1.602176634e-19


def status(label):
    return BRIDGE_EXIT_CODES[label][0]


def eos_node(a0=4.04, bulk=79.0, **kw):
    return HandoffData(
        {
            'a0': {'value': a0, 'unit': 'angstrom', 'std': 0.002},
            'v0': {'value': a0**3 / 4, 'unit': 'angstrom**3', 'std': 0.01},
            'e0': {'value': -57.1, 'unit': 'eV', 'std': 1e-4},
            'bulk_modulus': {'value': bulk, 'unit': 'GPa', 'std': 1.0},
            'bulk_modulus_derivative': {'value': 4.5, 'unit': 'dimensionless', 'std': 0.3},
        },
        metadata={'ecutwfc': 30, 'pseudos': {'Al': 'abc'}},
        **kw,
    )


def elastic_node(c11=110.0, c12=60.0, c44=30.0, stds=(3.0, 2.0, 1.5), unit='GPa'):
    return HandoffData(
        {name: {'value': v, 'unit': unit, 'std': s} for name, v, s in zip(('c11', 'c12', 'c44'), (c11, c12, c44), stds)}
    )


def assumptions_node(temperature=600.0, anneal_time=1e-4, m0=2.5e-6, m0_std=5.75e-6, q=0.23, q_std=0.05, t_std=5.0):
    return make_assumptions(
        {
            'mobility_prefactor': {'value': m0, 'unit': 'm**4/(J*s)', 'std': m0_std, 'source': 'MOOSE Cu example'},
            'activation_energy': {'value': q, 'unit': 'eV', 'std': q_std, 'source': 'MOOSE Cu example'},
            'temperature': {'value': temperature, 'unit': 'K', 'std': t_std, 'source': 'test'},
            'anneal_time': {'value': anneal_time, 'unit': 's', 'std': None, 'source': 'test'},
            'initial_grain_size': {'value': 1e-5, 'unit': 'm', 'std': 5e-6, 'source': 'test'},
        }
    )


def microstructure(n=4, size=40, pixel=5e-9, seed=1):
    """A hand-made periodic grain map: ``n`` vertical stripes."""
    ids = np.repeat(np.arange(n), size // n)[None, :].repeat(size, axis=0)
    rng = np.random.default_rng(seed)
    euler = np.c_[rng.uniform(0, 360, n), rng.uniform(0, 180, n), rng.uniform(0, 360, n)]
    return MicrostructureData(grain_ids=ids, pixel_size=pixel, euler_angles=euler)


# -- pure helpers -----------------------------------------------------------------------------------------------


@pytest.mark.unit
def test_born_violations():
    assert born_violations(110, 60, 30) == []
    assert len(born_violations(50, 60, 30)) == 1
    assert len(born_violations(50, 60, -1)) == 2


@pytest.mark.unit
def test_single_grain_is_single_crystal_and_bounds_order():
    """One cube grain: Voigt = Reuss = E_100 in closed form; isotropic constants: E for any orientation; random
    grains: the package's bounds equal the test's own (tests/references.py), Reuss <= Hill <= Voigt."""
    c11, c12, c44 = 108.2, 61.3, 28.5
    e100 = (c11 - c12) * (c11 + 2 * c12) / (c11 + c12)
    moduli = polycrystal_moduli(c11, c12, c44, [[0, 0, 0]])
    assert moduli['youngs_modulus_voigt'] == pytest.approx(e100, rel=1e-12)
    assert moduli['youngs_modulus_reuss'] == pytest.approx(e100, rel=1e-12)
    # uniaxial stress along a cube axis: nu = -S12/S11 = C12 / (C11 + C12)
    assert moduli['poisson_ratio_voigt'] == pytest.approx(c12 / (c11 + c12), rel=1e-12)
    assert single_crystal_youngs_100(c11, c12) == pytest.approx(e100, rel=1e-14)
    # C44 = (C11 - C12)/2 makes the crystal isotropic: every orientation, and both bounds, give E_100.
    isotropic = polycrystal_moduli(c11, c12, (c11 - c12) / 2, [[10, 20, 30], [200, 100, 7], [45, 54.7356, 0]])
    assert isotropic['youngs_modulus_voigt'] == pytest.approx(e100, rel=1e-12)
    assert isotropic['youngs_modulus_reuss'] == pytest.approx(e100, rel=1e-12)
    rng = np.random.default_rng(0)
    euler = np.c_[rng.uniform(0, 360, 400), np.degrees(np.arccos(rng.uniform(-1, 1, 400))), rng.uniform(0, 360, 400)]
    moduli = polycrystal_moduli(c11, c12, c44, euler)
    voigt, reuss = youngs_bounds(c11, c12, c44, euler)
    assert moduli['youngs_modulus_voigt'] == pytest.approx(voigt, rel=1e-10)
    assert moduli['youngs_modulus_reuss'] == pytest.approx(reuss, rel=1e-10)
    assert moduli['youngs_modulus_reuss'] < moduli['youngs_modulus_hill'] < moduli['youngs_modulus_voigt']
    # Random texture of Al:  Hill E about 70-71 GPa (70.4 GPa from the room-temperature constants of Kamm and Alers, J.
    # Appl.  Phys. 35, 327 (1964)).
    assert 69.5 < moduli['youngs_modulus_hill'] < 72.0


@pytest.mark.unit
def test_first_order_std_matches_analytic():
    values, stds = (110.0, 60.0), (3.0, 2.0)
    c11, c12 = values
    d11 = ((c11 + 2 * c12) * (c11 + c12) + (c11 - c12) * (c11 + c12) - (c11 - c12) * (c11 + 2 * c12)) / (c11 + c12) ** 2
    d12 = ((-(c11 + 2 * c12) + 2 * (c11 - c12)) * (c11 + c12) - (c11 - c12) * (c11 + 2 * c12)) / (c11 + c12) ** 2
    expected = math.hypot(d11 * stds[0], d12 * stds[1])
    assert first_order_std(single_crystal_youngs_100, values, stds) == pytest.approx(expected, rel=1e-6)


# -- dft_to_md ------------------------------------------------------------------------------------------------


def test_dft_to_md_hands_on_with_units_and_std(aiida_profile):
    eos = eos_node()
    elastic = elastic_node(unit='GPa')
    result, node = dft_to_md.run_get_node(eos=eos, elastic=elastic)
    assert node.is_finished_ok
    assert result['eos'].bridge == 'dft_to_md'
    assert (result['eos'].from_scale, result['eos'].to_scale) == ('dft', 'md')
    assert result['eos'].get_quantity('a0').unit == 'angstrom'
    assert result['eos']['a0'].std == 0.002
    assert result['eos'].metadata['pseudos'] == {'Al': 'abc'}
    derived = result['elastic']['bulk_modulus_from_elastic']
    assert derived.value == pytest.approx((110 + 120) / 3)
    assert derived.std == pytest.approx(math.sqrt(3.0**2 + 4 * 2.0**2) / 3)


def test_dft_to_md_converts_units(aiida_profile):
    """Cij given in Pa arrive in GPa on the atomistic side."""
    elastic = elastic_node(110e9, 60e9, 30e9, stds=(3e9, 2e9, 1e9), unit='Pa')
    result = dft_to_md(eos=eos_node(), elastic=elastic)
    assert result['elastic']['c11'].unit == 'GPa'
    assert result['elastic']['c11'].value == pytest.approx(110.0)
    assert result['elastic']['c11'].std == pytest.approx(3.0)


@pytest.mark.parametrize(
    'eos_kw, elastic_kw, label',
    [
        ({}, {'c11': 50.0, 'c12': 60.0}, 'ERROR_DFT_TO_MD_BORN_UNSTABLE'),
        ({}, {'c44': -2.0}, 'ERROR_DFT_TO_MD_BORN_UNSTABLE'),
        ({'bulk': -5.0}, {}, 'ERROR_DFT_TO_MD_INVALID_EOS'),
        ({'bulk': 150.0}, {}, 'ERROR_DFT_TO_MD_INCONSISTENT'),
    ],
)
def test_dft_to_md_exit_codes(aiida_profile, eos_kw, elastic_kw, label):
    _, node = dft_to_md.run_get_node(eos=eos_node(**eos_kw), elastic=elastic_node(**elastic_kw))
    assert node.exit_status == status(label)
    assert 'dft_to_md' in node.exit_message


# -- md_to_mesoscale ------------------------------------------------------------------------------------------


def md_node(gb_energy=0.49, unit='J/m**2', std=None):
    return HandoffData(
        {
            'a0_md': {'value': 4.045, 'unit': 'angstrom'},
            'gb_energy': {'value': gb_energy, 'unit': unit, 'std': std},
        }
    )


def test_md_to_mesoscale_mobility_and_first_order_std(aiida_profile):
    assumptions = assumptions_node()
    result, node = md_to_mesoscale.run_get_node(md_properties=md_node(), assumptions=assumptions)
    assert node.is_finished_ok
    interface = result['interface']
    kt = BOLTZMANN_EV * 600.0
    mobility = 2.5e-6 * math.exp(-0.23 / kt)
    assert interface['gb_mobility'].value == pytest.approx(mobility, rel=1e-12)
    relative = math.sqrt((5.75e-6 / 2.5e-6) ** 2 + (0.05 / kt) ** 2 + (0.23 * 5.0 / (kt * 600.0)) ** 2)
    assert interface['gb_mobility'].std == pytest.approx(relative * mobility, rel=1e-9)
    # The contract of the phase-field rung: explicit SI units (eV for Q).
    assert interface['gb_energy'].unit == 'J/m**2'
    assert interface['mobility_prefactor'].unit == 'm**4/(J*s)'
    assert interface['activation_energy'].unit == 'eV'
    assert interface['temperature'].unit == 'K'
    assert interface['anneal_time'].unit == 's'
    assert interface['mobility_prefactor'].note.startswith('assumed; source: MOOSE Cu example')
    assert interface.bridge == 'md_to_mesoscale'


def test_md_to_mesoscale_converts_and_adds_potential_misfit(aiida_profile):
    """sigma in mJ/m^2 arrives in J/m^2; the potential misfit vs DFT becomes part of sigma's std."""
    check = HandoffData(
        {
            'a0_relative_error': {'value': 0.01, 'unit': 'dimensionless'},
            'c44_relative_error': {'value': -0.07, 'unit': 'dimensionless'},
        }
    )
    result = md_to_mesoscale(
        md_properties=md_node(490.0, 'mJ/m**2', std=10.0), assumptions=assumptions_node(), potential_check=check
    )
    sigma = result['interface']['gb_energy']
    assert sigma.value == pytest.approx(0.49)
    rms = math.sqrt((0.01**2 + 0.07**2) / 2)
    assert sigma.std == pytest.approx(math.hypot(0.010, rms * 0.49))


@pytest.mark.parametrize(
    'gb_energy, assumption_kw, label',
    [
        (-0.1, {}, 'ERROR_MD_TO_MESOSCALE_GB_ENERGY'),
        (0.0, {}, 'ERROR_MD_TO_MESOSCALE_GB_ENERGY'),
        (12.0, {}, 'ERROR_MD_TO_MESOSCALE_GB_ENERGY'),
        (0.49, {'anneal_time': -1.0}, 'ERROR_MD_TO_MESOSCALE_ASSUMPTIONS'),
        (0.49, {'temperature': 0.0}, 'ERROR_MD_TO_MESOSCALE_ASSUMPTIONS'),
    ],
)
def test_md_to_mesoscale_exit_codes(aiida_profile, gb_energy, assumption_kw, label):
    _, node = md_to_mesoscale.run_get_node(
        md_properties=md_node(gb_energy), assumptions=assumptions_node(**assumption_kw)
    )
    assert node.exit_status == status(label)
    assert 'md_to_mesoscale' in node.exit_message


def md_mobility_node(m0=3e-6, q=0.15, covariance=((0.54944, 0.0367233), (0.0367233, 0.0025)), temps=(700, 790, 880)):
    """An MD rung's ``gb_mobility`` handoff: an Arrhenius fit centred at 790 K (std of ln M 0.1 there, of Q 0.05 eV),
    so ln M0 and Q are strongly correlated (r = 0.99), as in a real fit far from 1/T = 0."""
    ln_m0 = math.log(m0)
    return HandoffData(
        {
            'gb_mobility_prefactor': {'value': math.exp(ln_m0), 'unit': 'm**4/(J*s)',
                                      'std': math.exp(ln_m0) * math.sqrt(covariance[0][0])},
            'gb_activation_energy': {'value': q, 'unit': 'eV', 'std': math.sqrt(covariance[1][1])},
        },
        from_scale='md',
        to_scale='mesoscale',
        metadata={
            'arrhenius': {'ln_prefactor': ln_m0, 'activation_energy': q, 'covariance': [list(r) for r in covariance],
                          'chi2': 0.5, 'dof': 1, 'scaled': False},
            'temperatures': [{'temperature': float(t)} for t in temps],
        },
    )  # fmt: skip


def anneal_node(temperature=560.0, t_std=5.0, reduction=(1.0, 2.302585), by_hand=False):
    values = {
        'temperature': {'value': temperature, 'unit': 'K', 'std': t_std, 'source': 'test'},
        'anneal_time': {'value': 1e-4, 'unit': 's', 'std': None, 'source': 'test'},
        'initial_grain_size': {'value': 1e-5, 'unit': 'm', 'std': 5e-6, 'source': 'test'},
    }
    if reduction is not None:
        values['mobility_reduction'] = {'value': reduction[0], 'unit': 'dimensionless',
                                        'std': reduction[0] * reduction[1], 'source': 'test: pure metal'}  # fmt: skip
    if by_hand:
        values['mobility_prefactor'] = {'value': 2.5e-6, 'unit': 'm**4/(J*s)', 'std': None, 'source': 'test'}
        values['activation_energy'] = {'value': 0.23, 'unit': 'eV', 'std': None, 'source': 'test'}
    return make_assumptions(values)


def test_md_mobility_at_the_anneal_temperature_uses_the_covariance(aiida_profile):
    """M(560 K) from the MD fit: value M0 exp(-Q/kT); std of ln M = sqrt(J C J^T + (Q dT/kT^2)^2 + reduction^2) with
    J = (1, -1/kT), written out here; far below what independent M0 and Q stds would give (r = 0.99); 560 K lies
    140 K below the simulated 700-880 K, which the note says.  The phase field reads this M and std, not M0 and Q."""
    from aiida_multiscale.workflows.functions.phase_field import mobility_of

    mobility = md_mobility_node()
    result, node = md_to_mesoscale.run_get_node(
        md_properties=md_node(), assumptions=anneal_node(reduction=(0.1, 1.0)), gb_mobility=mobility
    )
    assert node.is_finished_ok, node.exit_message
    interface = result['interface']
    kt = BOLTZMANN_EV * 560.0
    x = 1 / kt
    expected = 0.1 * 3e-6 * math.exp(-0.15 * x)
    fit_var = 0.54944 - 2 * x * 0.0367233 + x * x * 0.0025
    ln_std = math.sqrt(fit_var + (0.15 * 5.0 / (kt * 560.0)) ** 2 + 1.0**2)
    gb = interface['gb_mobility']
    assert gb.value == pytest.approx(expected, rel=1e-9)
    assert gb.std / gb.value == pytest.approx(ln_std, rel=1e-9)
    independent = math.sqrt(0.54944 + (0.05 * x) ** 2)
    assert math.sqrt(fit_var) < 0.5 * independent
    assert gb.note.startswith('computed') and 'extrapolated 140 K' in gb.note
    assert interface.metadata['extrapolation']['extrapolated'] is True
    assert interface.metadata['mobility_source'] == 'md'
    assert interface['activation_energy'].note.startswith('computed')
    assert interface['mobility_reduction'].value == pytest.approx(0.1)
    assert mobility_of(interface) == pytest.approx((gb.value, gb.std / gb.value), rel=1e-12)
    # Inside the simulated range the fit alone is far tighter than 140 K below it.
    inside, _ = md_to_mesoscale.run_get_node(
        md_properties=md_node(), assumptions=anneal_node(temperature=790.0, t_std=0.0, reduction=None),
        gb_mobility=mobility,
    )  # fmt: skip
    assert inside['interface'].metadata['extrapolation']['extrapolated'] is False
    assert inside['interface']['gb_mobility'].relative_std == pytest.approx(0.1, rel=1e-3)


def test_md_mobility_splits_the_budget_into_fit_and_reduction(aiida_profile):
    """The grain-size budget has a term for the MD fit, one for the anneal temperature through Q/kT^2 and one for the
    assumed reduction, all pointing at the interface handoff (where the trace finds them)."""
    from aiida_multiscale.bridges.mesoscale_to_fem import grain_size_terms

    mobility = md_mobility_node().store()
    result = md_to_mesoscale(md_properties=md_node(), assumptions=anneal_node(), gb_mobility=mobility)
    interface = result['interface']
    terms = {t['quantity']: t for t in grain_size_terms(2e-5, 1e-5, interface)}
    budget = interface.metadata['gb_mobility_budget']
    assert {terms[name]['uuid'] for name in ('gb_mobility', 'temperature', 'mobility_reduction')} == {interface.uuid}
    assert budget['md_mobility_uuid'] == mobility.uuid
    assert terms['gb_mobility']['std'] == pytest.approx(budget['md_fit_ln_std'])
    kt = BOLTZMANN_EV * 560.0
    assert terms['temperature']['std'] == pytest.approx(0.15 * 5.0 / (kt * 560.0), rel=1e-9)
    assert terms['mobility_reduction']['std'] == pytest.approx(2.302585)
    growth = (4e-10 - 1e-10) / (2 * 4e-10)
    assert terms['mobility_reduction']['sensitivity'] == pytest.approx(growth)


@pytest.mark.parametrize(
    'with_md, by_hand, words',
    [
        (True, True, 'given twice'),
        (False, False, "missing assumed quantities ['mobility_prefactor', 'activation_energy']"),
    ],
)
def test_mobility_from_exactly_one_place(aiida_profile, with_md, by_hand, words):
    """MD and by hand at once, or neither: refused, with the fix named."""
    kwargs = {'gb_mobility': md_mobility_node()} if with_md else {}
    _, node = md_to_mesoscale.run_get_node(
        md_properties=md_node(), assumptions=anneal_node(by_hand=by_hand, reduction=None), **kwargs
    )
    assert node.exit_status == status('ERROR_MD_TO_MESOSCALE_ASSUMPTIONS')
    assert words in node.exit_message


# -- mesoscale_to_fem -----------------------------------------------------------------------------------------


def interface_node():
    return HandoffData(
        {
            'gb_energy': {'value': 0.49, 'unit': 'J/m**2', 'std': 0.05},
            'gb_mobility': {'value': 3e-8, 'unit': 'm**4/(J*s)', 'std': 6e-8},
            'anneal_time': {'value': 1e-4, 'unit': 's', 'std': None},
        }
    )


def test_mesoscale_to_fem_si_units_new_microstructure_and_growth_std(aiida_profile):
    final, initial = microstructure(4), microstructure(8)
    parameters = orm.Dict({'interface_width': {'value': 10, 'unit': 'nm'}})
    result, node = mesoscale_to_fem.run_get_node(
        microstructure=final,
        elastic=elastic_node(),
        interface=interface_node(),
        initial_microstructure=initial,
        phase_field_parameters=parameters,
    )
    assert node.is_finished_ok
    assert result['elastic']['c11'].unit == 'Pa'
    assert result['elastic']['c11'].value == pytest.approx(110e9)
    assert result['elastic']['c11'].std == pytest.approx(3e9)
    new = result['microstructure']
    assert new.uuid != final.uuid
    assert np.array_equal(new.grain_ids, final.grain_ids)
    assert np.allclose(new.euler_angles, final.euler_angles)
    d, d0 = final.mean_grain_size, initial.mean_grain_size
    relative = math.hypot(2.0, 0.05 / 0.49)
    expected = (d**2 - d0**2) / (2 * d) * relative
    grains = result['grains']
    assert grains['mean_grain_size'].std == pytest.approx(expected, rel=1e-9)
    assert grains['interface_width'].value == pytest.approx(10e-9)


def test_mesoscale_to_fem_with_grain_statistics_and_realisations(aiida_profile):
    """With the phase field's grain_statistics: its mean size is handed on, the std adds the inputs (M, sigma, t, d0)
    through the growth law to the rung's own, in ln d; every realisation's map goes on as a new node."""
    first, second = microstructure(4, seed=1), microstructure(5, seed=2)
    d, d0, own = 2.0e-6, 1.0e-6, 0.1e-6
    statistics = HandoffData(
        {
            'mean_grain_size': {'value': d, 'unit': 'm', 'std': own},
            'initial_mean_grain_size': {'value': d0, 'unit': 'm', 'std': 0.5e-6},
        }
    )
    interface = HandoffData(
        {
            'gb_energy': {'value': 0.49, 'unit': 'J/m**2', 'std': 0.05},
            'gb_mobility': {'value': 3e-8, 'unit': 'm**4/(J*s)', 'std': 6e-8},
            'anneal_time': {'value': 3600, 'unit': 's', 'std': None},
            'initial_grain_size': {'value': d0, 'unit': 'm', 'std': 0.5e-6},
        }
    )
    result, node = mesoscale_to_fem.run_get_node(
        microstructure=first, elastic=elastic_node(), interface=interface, grain_statistics=statistics,
        realisation_1=second,
    )  # fmt: skip
    assert node.is_finished_ok, node.exit_message
    grains = result['grains']
    assert grains['mean_grain_size'].value == d
    # ln d = 1/2 ln(d0^2 + k M sigma t): d ln d/d ln(M sigma t) = (d^2 - d0^2)/(2 d^2), d ln d/d ln d0 = d0^2/d^2.
    growth, start = (d**2 - d0**2) / (2 * d**2), d0**2 / d**2
    relative = math.sqrt((growth * 2.0) ** 2 + (growth * 0.05 / 0.49) ** 2 + (start * 0.5) ** 2 + (own / d) ** 2)
    assert grains['mean_grain_size'].std == pytest.approx(d * relative, rel=1e-9)
    names = {entry['quantity'] for entry in grains.metadata['ln_grain_size_terms']}
    assert names == {'gb_mobility', 'gb_energy', 'initial_grain_size', 'mean_grain_size'}
    assert np.array_equal(result['realisation_01'].grain_ids, second.grain_ids)
    assert result['realisation_01'].uuid != second.uuid
    assert grains['grain_count'].value == pytest.approx((4 + 5) / 2)


def test_mesoscale_to_fem_adds_potential_misfit_once(aiida_profile):
    """The chain's phase field starts before DFT is done, so the misfit enters here: same grain-size std as through
    md_to_mesoscale, and an interface that already carries the misfit does not get it twice."""
    check = HandoffData(
        {
            'a0_relative_error': {'value': 0.01, 'unit': 'dimensionless'},
            'c44_relative_error': {'value': -0.07, 'unit': 'dimensionless'},
        }
    )
    final, initial = microstructure(4), microstructure(8)
    common = {'microstructure': final, 'elastic': elastic_node(), 'initial_microstructure': initial}
    md, assumptions = md_node(0.49, std=0.01), assumptions_node()
    plain = md_to_mesoscale(md_properties=md, assumptions=assumptions)['interface']
    with_misfit = md_to_mesoscale(md_properties=md, assumptions=assumptions, potential_check=check)['interface']
    late = mesoscale_to_fem(interface=plain, potential_check=check, **common)['grains']['mean_grain_size']
    early = mesoscale_to_fem(interface=with_misfit, **common)['grains']['mean_grain_size']
    twice = mesoscale_to_fem(interface=with_misfit, potential_check=check, **common)['grains']['mean_grain_size']
    without = mesoscale_to_fem(interface=plain, **common)['grains']['mean_grain_size']
    assert late.std == pytest.approx(early.std, rel=1e-12)
    assert twice.std == pytest.approx(early.std, rel=1e-12)
    # The expected std from the inputs alone: d^2 - d0^2 ~ M sigma t, so std_d = (d^2 - d0^2)/(2d) * rel(M sigma t);
    # rel(M)^2 = (std_M0/M0)^2 + (std_Q/kT)^2 + (Q std_T/(kT T))^2 (M0 = 2.5e-6 +/- 5.75e-6, Q = 0.23 +/- 0.05 eV,
    # T = 600 +/- 5 K), rel(sigma) = 0.01/0.49 from MD, the anneal time exact; the misfit (rms 5 %) adds to sigma's
    # relative std in quadrature.  The decade of M0 dominates the total.
    kt = BOLTZMANN_EV * 600.0
    relative_mobility2 = (5.75e-6 / 2.5e-6) ** 2 + (0.05 / kt) ** 2 + (0.23 * 5.0 / (kt * 600.0)) ** 2
    rms2 = (0.01**2 + 0.07**2) / 2
    d, d0 = final.mean_grain_size, initial.mean_grain_size
    growth = (d**2 - d0**2) / (2 * d)
    assert without.std == pytest.approx(growth * math.sqrt(relative_mobility2 + (0.01 / 0.49) ** 2), rel=1e-9)
    assert late.std == pytest.approx(growth * math.sqrt(relative_mobility2 + (0.01 / 0.49) ** 2 + rms2), rel=1e-9)
    assert late.std > without.std


def test_mesoscale_to_fem_exit_codes(aiida_profile):
    parameters = orm.Dict({'interface_width': 500e-9})
    _, node = mesoscale_to_fem.run_get_node(
        microstructure=microstructure(), elastic=elastic_node(), phase_field_parameters=parameters
    )
    assert node.exit_status == status('ERROR_MESOSCALE_TO_FEM_GRAIN_SIZE')
    assert 'interface width' in node.exit_message
    # Without interface_width the phase field's default of 4 elements counts: 4 x 3 um / 40 = 300 nm > 113 nm.
    _, node = mesoscale_to_fem.run_get_node(
        microstructure=microstructure(),
        elastic=elastic_node(),
        phase_field_parameters=orm.Dict({'domain_size': 3e-6, 'grid': 40}),
    )
    assert node.exit_status == status('ERROR_MESOSCALE_TO_FEM_GRAIN_SIZE')
    assert '3e-07 m' in node.exit_message
    _, node = mesoscale_to_fem.run_get_node(microstructure=microstructure(), elastic=elastic_node(50.0, 60.0))
    assert node.exit_status == status('ERROR_MESOSCALE_TO_FEM_BORN_UNSTABLE')


# -- fem_to_macro ---------------------------------------------------------------------------------------------


def mechanics_node(youngs, voigt, reuss, nu=0.34):
    return HandoffData(
        {
            'youngs_modulus': {'value': youngs, 'unit': 'Pa'},
            'poisson_ratio': {'value': nu, 'unit': 'dimensionless'},
            'youngs_modulus_voigt': {'value': voigt, 'unit': 'Pa'},
            'youngs_modulus_reuss': {'value': reuss, 'unit': 'Pa'},
            'youngs_modulus_hill': {'value': 0.5 * (voigt + reuss), 'unit': 'Pa'},
            'stress_concentration': {'value': 1.3, 'unit': 'dimensionless'},
        }
    )


def test_fem_to_macro_single_crystal_std_is_analytic(aiida_profile):
    """One grain in the cube orientation: E std = first-order std of (C11-C12)(C11+2C12)/(C11+C12), C44 drops out."""
    ids = np.zeros((10, 10), dtype=int)
    single = MicrostructureData(grain_ids=ids, pixel_size=1e-8, euler_angles=[[0.0, 0.0, 0.0]])
    elastic = elastic_node(110e9, 60e9, 30e9, stds=(3e9, 2e9, 5e9), unit='Pa')
    e100 = e_100(110e9, 60e9)
    grains = HandoffData({'mean_grain_size': {'value': 1e-7, 'unit': 'm', 'std': 2e-8}})
    result = fem_to_macro(
        mechanics=mechanics_node(e100, e100, e100, nu=60 / 170), elastic=elastic, microstructure=single, grains=grains
    )
    macro = result['macro']
    c11, c12 = 110e9, 60e9
    d11 = ((c11 + 2 * c12) * (c11 + c12) + (c11 - c12) * (c11 + c12) - (c11 - c12) * (c11 + 2 * c12)) / (c11 + c12) ** 2
    d12 = ((-(c11 + 2 * c12) + 2 * (c11 - c12)) * (c11 + c12) - (c11 - c12) * (c11 + 2 * c12)) / (c11 + c12) ** 2
    assert macro['youngs_modulus'].std == pytest.approx(math.hypot(d11 * 3e9, d12 * 2e9), rel=1e-5)
    # nu = C12/(C11+C12): d nu = sqrt((C12 s11)^2 + (C11 s12)^2)/(C11+C12)^2
    assert macro['poisson_ratio'].std == pytest.approx(math.hypot(c12 * 3e9, c11 * 2e9) / (c11 + c12) ** 2, rel=1e-5)
    assert macro['mean_grain_size'].std == 2e-8
    assert set(macro.names) == {
        'youngs_modulus',
        'poisson_ratio',
        'youngs_modulus_voigt',
        'youngs_modulus_reuss',
        'stress_concentration',
        'mean_grain_size',
    }
    assert (macro.from_scale, macro.to_scale, macro.bridge) == ('fem', 'macro', 'fem_to_macro')


@pytest.mark.parametrize(
    'youngs, nu, label',
    [
        (75e9, 0.34, 'ERROR_FEM_TO_MACRO_OUTSIDE_BOUNDS'),
        (60e9, 0.34, 'ERROR_FEM_TO_MACRO_OUTSIDE_BOUNDS'),
        (71e9, 0.55, 'ERROR_FEM_TO_MACRO_POISSON'),
    ],
)
def test_fem_to_macro_exit_codes(aiida_profile, youngs, nu, label):
    _, node = fem_to_macro.run_get_node(mechanics=mechanics_node(youngs, 71.6e9, 70.8e9, nu=nu))
    assert node.exit_status == status(label)
    assert 'fem_to_macro' in node.exit_message
