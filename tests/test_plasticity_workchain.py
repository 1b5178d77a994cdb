"""RvePlasticityWorkChain: crystal-plasticity RVE yield, its calcfunctions' maths, its refusals, and one real run.

The references are written in the tests (here and in ``rve_helpers.py``), separately from the package:

* Hall-Petch at the slip-system level, ``tau_c = (sigma_0 + k / sqrt(d)) / M``, with ``d`` the equivalent-circle
  diameter worked out by hand for a grain of known pixel count;
* the textbook Schmid and Taylor factors of a <001> fcc crystal in tension: ``m = 1/sqrt(6)`` on 8 systems and
  ``M = sqrt(6)`` (Bishop and Hill, Phil. Mag. 42, 1298 (1951));
* the rate factor ``(eps_dot / (N m a0))^xm`` of the Kalidindi, Bronkhorst and Anand (J. Mech. Phys. Solids 40, 537
  (1992)) flow rule, written out in the test;
* the Voigt and Reuss moduli of the grains from scipy's ``Rotation`` (not the package's Bunge matrices);
* in the real run, the Sachs and Taylor estimates of ``physics.plasticity`` (numpy and a linear programme, no MOOSE).
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from rve_helpers import CU, cubic_elastic, random_euler, voigt_reuss, voronoi_map

from aiida_multiscale.data.handoff import HandoffData
from aiida_multiscale.data.microstructure import MicrostructureData
from aiida_multiscale.physics.plasticity import crystal_loading_directions, sachs_taylor_yield, schmid_factors
from aiida_multiscale.workflows.functions.plasticity import (
    cp_rve_analysis,
    grain_slip_resistance,
    make_plasticity_assumptions,
    validate_plasticity_assumptions,
    validate_plasticity_parameters,
)
from aiida_multiscale.workflows.plasticity import BOUNDS_TOLERANCE, RvePlasticityWorkChain, yield_outside_bounds


# ------------------------------------------------------------------------------------------- independent references
def _reuss_voigt_youngs(constants, euler, weights) -> tuple[float, float]:
    voigt, reuss = voigt_reuss(constants, euler, weights)
    return 1 / reuss[0, 0], 1 / np.linalg.inv(voigt)[0, 0]


def _rate_factor(strain_rate, a0, xm, m, n_active) -> float:
    """Kalidindi flow rule in steady flow: sigma / (tau_c / m) = (eps_dot / (N m a0))^xm."""
    return (strain_rate / (n_active * m * a0)) ** xm


# ------------------------------------------------------------------------------------------ calcfunction maths
def test_slip_resistance_hall_petch_hand_value():
    """A grain of 40 pixels of 1 um: d = sqrt(4 x 40 um^2 / pi) = 7.1365 um, tau_c = (25 + 0.12/sqrt(d)) / 3.06 MPa.

    Cu's stored assumptions (Hansen and Ralph 1982: sigma_0 = 25 MPa, k = 0.12 MPa m^0.5) and M = 3.06: by hand,
    0.12 / sqrt(7.1365e-6) = 44.92 MPa, so tau_c = 69.92 / 3.06 = 22.85 MPa; the 60-pixel grain (d = 8.740 um):
    (25 + 40.59) / 3.06 = 21.43 MPa.  Small grains are harder.
    """
    grains = np.ones((10, 10), dtype=int)
    grains[:, :4] = 0
    micro = MicrostructureData(grain_ids=grains, pixel_size=1e-6, euler_angles=[[0, 0, 0], [10, 20, 30]])
    assumptions = make_plasticity_assumptions('Cu')
    result = grain_slip_resistance(micro, assumptions, orm.Dict({'tau_c_resolution': 0.01}))
    sizes = result.get_array('grain_size')
    assert sizes == pytest.approx([7.1365e-6, 8.7404e-6], rel=1e-4)
    exact = result.get_array('tau_c_exact') / 1e6
    assert exact == pytest.approx([22.85, 21.43], abs=0.01)
    assert exact[0] == pytest.approx((25 + 0.12 / math.sqrt(math.sqrt(4 * 40e-12 / math.pi))) / 3.06, rel=1e-12)
    # Rounded to the 0.01 MPa grid that groups grains into blocks: at most half a step away.
    assert np.abs(result.get_array('tau_c') / 1e6 - exact).max() <= 0.005 + 1e-12
    # Al's: sigma_0 = 16 MPa, k = 0.04 MPa m^0.5 (Hansen 1977): (16 + 0.04 / sqrt(d)) / 3.06.
    al = grain_slip_resistance(micro, make_plasticity_assumptions('Al'), orm.Dict({'tau_c_resolution': 0.01}))
    assert al.get_array('tau_c_exact')[0] / 1e6 == pytest.approx((16 + 0.04 / math.sqrt(7.1365e-6)) / 3.06, rel=1e-4)


def _synthetic_postprocessors(youngs_mpa: float, yield_mpa: float, strain: float, steps: int) -> orm.ArrayData:
    """An elastic-perfectly-plastic curve in MOOSE's CSV columns (time 0 first, as MOOSE writes it)."""
    eps = np.linspace(0.0, strain, steps + 1)
    sigma = np.minimum(youngs_mpa * eps, yield_mpa)
    array = orm.ArrayData()
    array.set_array('time', eps / 1e-3)
    array.set_array('F_xx', 1.0 + eps)
    array.set_array('cauchy_xx', sigma)
    array.set_array('pk1_xx', sigma / (1 + eps))
    return array


def test_analysis_taylor_factor_and_bounds_of_cube_grains():
    """Two <001> grains (Bunge (0,0,0) and (90,0,0)) with tau_c 20 and 30 MPa on 3/4 and 1/4 of the map.

    On a flat curve at 60 MPa the 0.2 % offset yield is 60 MPa exactly, and the Taylor factor (yield over the
    area-weighted mean tau_c, 22.5 MPa) 60 / 22.5 = 2.667.  The bounds of <001> grains are textbook numbers: Sachs
    tau_c sqrt(6) (m = 1/sqrt(6) on 8 systems), Taylor tau_c sqrt(6) (M = sqrt(6), Bishop and Hill), each times its
    rate factor: (eps_dot / (8 m a0))^xm for Sachs, (M eps_dot / (5 a0))^xm for Taylor.
    """
    grains = np.zeros((4, 4), dtype=int)
    grains[0, :] = 1
    micro = MicrostructureData(grain_ids=grains, pixel_size=1e-6, euler_angles=[[0, 0, 0], [90, 0, 0]])
    tau = orm.ArrayData()
    tau.set_array('tau_c', np.array([20e6, 30e6]))
    assumptions = make_plasticity_assumptions('Cu')
    parameters = orm.Dict({'strain': 0.01, 'steps': 100, 'flow_strain': 0.02, 'mesh_scale': 1.0})
    result = cp_rve_analysis(_synthetic_postprocessors(100000.0, 60.0, 0.01, 100), micro, tau, assumptions, parameters)
    plasticity = result['plasticity']
    assert plasticity.value('yield_strength', 'MPa') == pytest.approx(60.0, rel=1e-9)
    assert plasticity.value('taylor_factor') == pytest.approx(60.0 / 22.5, rel=1e-9)
    assert plasticity.value('youngs_modulus', 'GPa') == pytest.approx(100.0, rel=1e-9)
    # The run ends at 1 %, before the 2 % asked for: the flow stress is the one at 1 %, and the note says so.
    assert plasticity.value('flow_stress', 'MPa') == pytest.approx(60.0)
    assert 'ends before 0.02' in plasticity.get_quantity('flow_stress').note
    xm, a0, rate = 0.012, 1e-3, 1e-3  # Cu's assumptions; the default strain rate
    m, big_m = 1 / math.sqrt(6), math.sqrt(6)
    sachs = 22.5 * math.sqrt(6) * _rate_factor(rate, a0, xm, m, 8)
    taylor = 22.5 * big_m * _rate_factor(rate, a0, xm, 1 / big_m, 5)
    assert plasticity.value('yield_strength_sachs', 'MPa') == pytest.approx(sachs, rel=1e-6)
    assert plasticity.value('yield_strength_taylor', 'MPa') == pytest.approx(taylor, rel=1e-6)
    # The rate factors are not 1: without them Sachs would be 55.11 MPa, i.e. the function applies them.
    assert abs(sachs / (22.5 * math.sqrt(6)) - 1) > 0.01
    curve = result['flow_curve']
    assert curve.get_array('stress').max() == pytest.approx(60e6)


# ------------------------------------------------------------------------------------------------------ refusals
def test_validator_refusals_name_the_fix():
    assert 'positive final strain' in validate_plasticity_parameters(orm.Dict({'strain': 0.0}))
    assert 'positive final strain' in validate_plasticity_parameters(orm.Dict({'strain': -0.01}))
    assert 'must be positive' in validate_plasticity_parameters(orm.Dict({'strain_rate': 0.0}))
    assert 'unknown keys' in validate_plasticity_parameters(orm.Dict({'rate': 1e-3}))
    assert 'whole number' in validate_plasticity_parameters(orm.Dict({'steps': 10.5}))
    assert validate_plasticity_parameters(orm.Dict({'strain': 0.01, 'strain_rate': 1e-2})) is None
    incomplete = HandoffData({'friction_stress': {'value': 16.0, 'unit': 'MPa'}})
    assert 'missing' in validate_plasticity_assumptions(incomplete)
    assert validate_plasticity_assumptions(make_plasticity_assumptions('Al')) is None

    micro = MicrostructureData(grain_ids=np.zeros((2, 2), dtype=int), pixel_size=1e-6, euler_angles=[[0, 0, 0]])
    inputs = {'microstructure': micro, 'elastic': cubic_elastic(CU), 'element': orm.Str('Fe')}
    message = RvePlasticityWorkChain.spec().inputs.validator(inputs, None)
    assert "'Fe' has no stored crystal-plasticity assumptions" in message and 'give the `assumptions` input' in message
    inputs['element'] = orm.Str('Cu')
    assert RvePlasticityWorkChain.spec().inputs.validator(inputs, None) is None
    # A pixel size in the wrong unit (1e-9 m: nanometre grains) puts tau_c above the saturation strength.
    tiny = MicrostructureData(grain_ids=np.zeros((2, 2), dtype=int), pixel_size=1e-9, euler_angles=[[0, 0, 0]])
    inputs.update(microstructure=tiny)
    assert 'check the pixel size' in RvePlasticityWorkChain.spec().inputs.validator(inputs, None)
    inputs.update(assumptions=make_plasticity_assumptions('Al'))
    assert 'check the pixel size' in RvePlasticityWorkChain.spec().inputs.validator(inputs, None)
    with pytest.raises(ValueError, match="no stored crystal-plasticity assumptions for 'Fe'"):
        make_plasticity_assumptions('Fe')


def test_bounds_check_and_its_exit_code():
    """The check behind exit code 340: 5 % on either side of [Sachs, Taylor], NaN refused; the message has numbers."""
    assert BOUNDS_TOLERANCE == 0.05
    assert not yield_outside_bounds(70.0, 60.0, 80.0)
    assert not yield_outside_bounds(83.9, 60.0, 80.0) and yield_outside_bounds(84.1, 60.0, 80.0)
    assert not yield_outside_bounds(57.1, 60.0, 80.0) and yield_outside_bounds(56.9, 60.0, 80.0)
    assert yield_outside_bounds(float('nan'), 60.0, 80.0)
    exit_code = RvePlasticityWorkChain.exit_codes.ERROR_YIELD_OUTSIDE_SACHS_TAYLOR
    assert exit_code.status == 340
    message = exit_code.format(pk=7, value=90.0, sachs=60.0, taylor=80.0, tolerance=0.05).message
    assert message.startswith('plasticity handoff<7>: yield_strength = 90 MPa')
    assert '[Sachs 60, Taylor 80] MPa' in message


def test_protocol_assumptions_have_sources():
    """Every stored assumption of Al and Cu: a note naming its source, a std (or explicit null), Taylor factor."""
    for element, reference in (('Al', 'Hansen, Acta Metall. 25, 863 (1977)'), ('Cu', 'Acta Metall. 30, 411 (1982)')):
        assumptions = make_plasticity_assumptions(element)
        assert assumptions.producer == 'assumption'
        for name in assumptions.names:
            assert assumptions.get_quantity(name).note.startswith('assumed; source: '), name
        assert reference in assumptions.get_quantity('friction_stress').note
        # ln std 0.3 -> std = 0.3 x value
        assert assumptions.get_quantity('friction_stress').std == pytest.approx(
            0.3 * assumptions.value('friction_stress')
        )
        assert assumptions.value('taylor_factor_random') == 3.06
    al = make_plasticity_assumptions('Al')
    assert 'not a fit' in al.get_quantity('hardening_modulus').note
    assert al.get_quantity('hardening_modulus').std == pytest.approx(0.5 * 60.0)
    cu = make_plasticity_assumptions('Cu')
    assert cu.value('hardening_modulus', 'MPa') == 180.0 and cu.value('saturation_strength', 'MPa') == 148.0
    assert cu.value('rate_sensitivity') == 0.012 and cu.value('reference_slip_rate', '1/s') == 0.001


# ------------------------------------------------------------------------------------------------ real MOOSE run
@pytest.mark.real_code
def test_copper_rve_between_sachs_and_taylor_real(codes):
    """Cu, 3 Voronoi grains on a 5 x 5 map of 1 um pixels, tension to 0.5 % in 30 steps at 1e-3 1/s (fast protocol,
    shortened for the test's CPU budget).

    * Sachs <= yield <= Taylor, both computed here from ``physics.plasticity`` (no MOOSE) with the test's own
      Hall-Petch tau_c and rate factors: a wrong orientation convention, slip system or tau_c per grain moves the
      yield out (the interval is about 40 % wide, the bounds differ by the orientation factors 1/m and M).
    * E of the first (elastic) step within the Reuss-Voigt interval of the same orientations (scipy rotations).
    * The assumptions are an input of the chain and of the calcfunctions, with their sources.
    """
    grains = voronoi_map(3, (5, 5), seed=4)
    euler = random_euler(grains.max() + 1, seed=5)
    micro = MicrostructureData(grain_ids=grains, pixel_size=1e-6, euler_angles=euler)
    overrides = {'parameters': {'strain': 0.005, 'steps': 30, 'flow_strain': 0.005}}
    builder = RvePlasticityWorkChain.get_builder_from_protocol(
        codes['moose'], 'Cu', microstructure=micro, elastic=cubic_elastic(CU), protocol='fast', overrides=overrides
    )
    builder.moose.metadata.options.max_wallclock_seconds = 900
    start = time.monotonic()
    results, node = run_get_node(builder)
    wall = time.monotonic() - start
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    plasticity = results['plasticity']

    # The test's own tau_c: Hall-Petch at each grain's equivalent-circle diameter, rounded to 0.1 MPa as the model.
    weights = np.bincount(grains.ravel()) / grains.size
    d = np.sqrt(4 * np.bincount(grains.ravel()) * 1e-12 / np.pi)
    tau_c = np.round((25.0 + 0.12 / np.sqrt(d)) / 3.06 / 0.1) * 0.1  # MPa
    bounds = sachs_taylor_yield(euler, tau_c * 1e6, weights=weights)
    factors = schmid_factors(crystal_loading_directions(euler))
    m = factors.max(axis=1)
    n_active = np.sum(np.isclose(factors, m[:, None], rtol=1e-6), axis=1)
    sachs_rate = [_rate_factor(1e-3, 1e-3, 0.012, mi, ni) for mi, ni in zip(m, n_active)]
    taylor_rate = [_rate_factor(1e-3, 1e-3, 0.012, 1 / big, 5) for big in bounds['taylor_factors']]
    sachs = float(weights @ (tau_c * bounds['sachs_factors'] * sachs_rate))
    taylor = float(weights @ (tau_c * bounds['taylor_factors'] * taylor_rate))
    value = plasticity.value('yield_strength', 'MPa')
    assert sachs < value < taylor, (sachs, value, taylor)
    assert plasticity.value('yield_strength_sachs', 'MPa') == pytest.approx(sachs, rel=1e-6)
    assert plasticity.value('yield_strength_taylor', 'MPa') == pytest.approx(taylor, rel=1e-6)
    assert plasticity.value('taylor_factor') == pytest.approx(value / float(weights @ tau_c), rel=1e-9)
    assert plasticity.value('flow_stress', 'MPa') > value  # hardening (h0 = 180 MPa) between yield and 0.5 %
    # The ramp ends at 0.5 % up to round-off: that is the flow strain asked for, not a run that ended early.
    assert plasticity.metadata['flow_strain'] == 0.005
    assert 'ends before' not in plasticity.get_quantity('flow_stress').note

    e_reuss, e_voigt = _reuss_voigt_youngs(CU, euler, weights)
    youngs = plasticity.value('youngs_modulus', 'GPa')
    assert e_reuss < youngs < e_voigt, (e_reuss, youngs, e_voigt)

    # The assumptions: an input of the chain, and of the calcfunction that made tau_c, with their sources.
    assumptions = node.inputs.assumptions
    assert assumptions.producer == 'assumption'
    assert 'Hansen and B. Ralph, Acta Metall. 30, 411 (1982)' in assumptions.get_quantity('friction_stress').note
    assert 'Kalidindi' in assumptions.get_quantity('hardening_modulus').note
    creator = results['slip_resistance'].creator
    assert creator.inputs.assumptions.uuid == assumptions.uuid
    assert plasticity.creator.inputs.assumptions.uuid == assumptions.uuid

    print(
        f'Cu RVE: yield {value:.2f} MPa in [Sachs {sachs:.2f}, Taylor {taylor:.2f}], E {youngs:.1f} GPa in '
        f'[{e_reuss:.1f}, {e_voigt:.1f}], Taylor factor {plasticity.value("taylor_factor"):.3f}, '
        f'flow stress {plasticity.value("flow_stress", "MPa"):.2f} MPa; {wall:.0f} s wall'
    )


def test_builder_from_protocol_caps_the_mesh(codes):
    """fast: a 20 x 20 map gets mesh_scale 0.5 (10 x 10 = 100 elements); a 5 x 5 map keeps one element per pixel."""
    micro = MicrostructureData(
        grain_ids=voronoi_map(4, (20, 20), seed=1), pixel_size=1e-6, euler_angles=random_euler(4, 2)
    )
    builder = RvePlasticityWorkChain.get_builder_from_protocol(
        codes['moose'], 'Al', microstructure=micro, protocol='fast'
    )
    parameters = builder.parameters.get_dict()
    assert parameters['mesh_scale'] == 0.5 and parameters['strain'] == 0.01 and parameters['steps'] == 50
    assert parameters['strain_rate'] == 1e-3
    assert builder.assumptions.value('friction_stress', 'MPa') == 16.0 and builder.element.value == 'Al'
    small = MicrostructureData(grain_ids=np.zeros((5, 5), dtype=int), pixel_size=1e-6, euler_angles=[[0, 0, 0]])
    builder = RvePlasticityWorkChain.get_builder_from_protocol(
        codes['moose'], 'Cu', microstructure=small, protocol='fast'
    )
    assert builder.parameters['mesh_scale'] == 1.0
    with pytest.raises(ValueError, match="no stored crystal-plasticity assumptions for 'Fe'"):
        RvePlasticityWorkChain.get_builder_from_protocol(codes['moose'], 'Fe')
