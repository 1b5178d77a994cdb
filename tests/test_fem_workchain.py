"""Tests of ``FemWorkChain``: validators, protocol builder, and a real run on a small polycrystal."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from aiida import orm
from aiida.common.links import LinkType
from aiida.engine import run_get_node
from references import youngs_bounds

from aiida_multiscale.data.handoff import HandoffData
from aiida_multiscale.data.microstructure import MicrostructureData
from aiida_multiscale.workflows.fem import FemWorkChain


def _elastic(c11=108.2, c12=61.3, c44=28.5, unit='GPa'):
    return HandoffData(
        {
            name: {'value': value, 'unit': unit, 'std': None, 'note': 'test'}
            for name, value in (('c11', c11), ('c12', c12), ('c44', c44))
        }
    )


def test_independent_bounds_of_a_single_crystal():
    """The test's own bounds (tests/references.py): one grain of any orientation has Voigt = Reuss = E along x; the
    cube one E_100 in closed form; isotropic constants (C44 = (C11 - C12)/2) give E_100 for any orientation."""
    c11, c12, c44 = 108.2, 61.3, 28.5
    e100 = (c11 - c12) * (c11 + 2 * c12) / (c11 + c12)
    assert youngs_bounds(c11, c12, c44, [[0, 0, 0]], [1.0]) == pytest.approx((e100, e100))
    assert youngs_bounds(c11, c12, c44, [[90, 90, 90]], [1.0]) == pytest.approx((e100, e100))
    isotropic = youngs_bounds(c11, c12, (c11 - c12) / 2, [[10, 20, 30], [200, 100, 7]], [0.3, 0.7])
    assert isotropic == pytest.approx((e100, e100))
    voigt, reuss = youngs_bounds(c11, c12, c44, [[0, 0, 0], [45, 54.7356, 0]], [0.5, 0.5])
    assert reuss < voigt


def _voronoi(n=6, size=16, seed=5):
    rng = np.random.default_rng(seed)
    seeds = rng.uniform(0, size, (n, 2))
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    dx, dy = np.abs(xx[..., None] - seeds[:, 0]), np.abs(yy[..., None] - seeds[:, 1])
    labels = np.argmin(np.minimum(dx, size - dx) ** 2 + np.minimum(dy, size - dy) ** 2, axis=-1)
    euler = np.column_stack(
        [rng.uniform(0, 360, n), np.degrees(np.arccos(rng.uniform(-1, 1, n))), rng.uniform(0, 360, n)]
    )
    return MicrostructureData(grain_ids=labels, pixel_size=0.25e-6, euler_angles=euler)


@pytest.mark.parametrize(
    ('elastic', 'match'),
    [
        (lambda: _elastic(50, 60, 20), r'C11 - C12 = -10 must be > 0 \(C11 = 50, C12 = 60'),
        (lambda: _elastic(100, 50, -1), 'C44 = -1 must be > 0'),
        (lambda: _elastic(100, -60, 20), 'C11 \\+ 2 C12'),
        (lambda: HandoffData({'c11': {'value': 1, 'unit': 'GPa'}}), r"\['c12', 'c44'\] are missing"),
        (lambda: _elastic(unit='eV'), 'must be pressures'),
    ],
)
def test_elastic_validator(codes, elastic, match):
    with pytest.raises(ValueError, match=match):
        builder = FemWorkChain.get_builder_from_protocol(codes['moose'], _voronoi(), elastic(), protocol='fast')
        run_get_node(builder)


@pytest.mark.parametrize(
    ('parameters', 'match'),
    [
        ({'applied_strain': 0.5}, r'applied_strain = 0.5 must be a number in \(0.0, 0.05\]'),
        ({'mesh_scale': 0}, 'mesh_scale'),
        ({'thickness': 'thin'}, 'thickness'),
        ({'strain': 1e-3}, r"unknown keys \['strain'\]"),
        ({'mesh_scale': 4.0}, None),  # valid alone; the mesh check below catches it for a big map
    ],
)
def test_parameters_validator(codes, parameters, match):
    micro = MicrostructureData(grain_ids=np.zeros((200, 200), int), pixel_size=1e-8, euler_angles=[[0, 0, 0]])
    with pytest.raises(ValueError, match=match or 'at most 250000: lower mesh_scale'):
        builder = FemWorkChain.get_builder_from_protocol(codes['moose'], micro, _elastic())
        builder.parameters = orm.Dict(parameters)  # the port validator, not the protocol, must catch these
        run_get_node(builder)


def test_protocol_builder(codes):
    overrides = {'parameters': {'applied_strain': 2e-3, 'thickness': None}, 'options': {'max_wallclock_seconds': 60}}
    original = copy.deepcopy(overrides)
    builder = FemWorkChain.get_builder_from_protocol(
        codes['moose'], protocol='precise', overrides=overrides, options={'queue_name': 'debug'}
    )
    assert overrides == original
    assert builder.parameters.get_dict() == {'applied_strain': 2e-3, 'mesh_scale': 2.0}
    assert builder.moose.metadata.options['max_wallclock_seconds'] == 60
    assert builder.moose.metadata.options['queue_name'] == 'debug'
    with pytest.raises(ValueError, match="unknown override key 'parameters.strain'"):
        FemWorkChain.get_builder_from_protocol(codes['moose'], overrides={'parameters': {'strain': 1}})
    assert set(FemWorkChain.get_available_protocols()) == {'fast', 'moderate', 'precise'}


@pytest.mark.real_code
def test_real_polycrystal(codes, tmp_path):
    micro = _voronoi()
    builder = FemWorkChain.get_builder_from_protocol(codes['moose'], micro, _elastic(108.2e9, 61.3e9, 28.5e9, 'Pa'))
    results, node = run_get_node(builder)
    assert node.exit_status == 0, node.exit_message
    result = results['mechanics']
    youngs = result.value('youngs_modulus', 'GPa')
    reuss, voigt = result.value('youngs_modulus_reuss', 'GPa'), result.value('youngs_modulus_voigt', 'GPa')
    # bounds recomputed here, with the test's own tensor rotation and averages over the RVE mesh's grain fractions
    rve = node.base.links.get_outgoing(link_label_filter='rve_elasticity_0').one().node.outputs.elasticity
    expected = youngs_bounds(108.2, 61.3, 28.5, micro.euler_angles, rve.metadata['grain_fractions'])
    assert (voigt, reuss) == pytest.approx(expected, rel=1e-9)
    assert reuss < youngs < voigt
    # the slab with grips and free faces (an apparent modulus) is inside the same bounds, and not the aggregate's: its
    # free surfaces let the grains relax (71.39 against the periodic RVE's 71.52 GPa on this map)
    apparent = result.value('youngs_modulus_apparent', 'GPa')
    assert reuss * 0.998 < apparent < voigt * 1.002 and apparent != pytest.approx(youngs, rel=1e-4)
    assert 0.3 < result.value('poisson_ratio') < 0.4
    assert result.value('stress_concentration') > 1.0
    assert result['youngs_modulus'].unit == 'Pa'
    assert 'yield_strength' not in result  # no element: elasticity only
    # provenance: the numbers come from the calcfunction, whose inputs are the RVE and slab results and the handoffs
    creator = result.base.links.get_incoming(link_type=LinkType.CREATE).one().node
    assert creator.process_label == 'fem_summary'
    with results['stress_map'].open(mode='rb') as handle:
        assert handle.read(4) == b'\x89PNG'
    # one MooseBaseWorkChain, which ran one MooseCalculation: the rendered input and its per-element angles
    base = node.base.links.get_outgoing(link_label_filter='moose').one().node
    calc = base.base.links.get_outgoing(link_label_filter='iteration_01').one().node
    assert calc.exit_status == 0 and set(calc.inputs.files.keys()) == {'euler_angles'}
    rendered = node.base.links.get_outgoing(link_label_filter='fem_input').one().node.outputs.input_file
    assert calc.inputs.input_file.uuid == rendered.uuid and 'checkpoint_interval' not in calc.inputs


@pytest.mark.parametrize('stress_gpa', [0.2, 0.01], ids=['above_voigt', 'below_reuss'])
def test_outside_bounds_hands_nothing_on_mock(codes, stress_gpa):
    """E_eff outside [Reuss, Voigt] ends the rung with 330 before any output is attached (mock: the RVE's result and
    the slab's averages are written by hand, no MOOSE runs); the number stays in the provenance as fem_summary's
    output."""
    import types

    from aiida.engine.utils import instantiate_process
    from aiida.manage import get_manager

    from aiida_multiscale.engines.moose.solid_mechanics import STRESS_UNIT

    assert STRESS_UNIT == 'GPa'
    micro = _voronoi()
    builder = FemWorkChain.get_builder_from_protocol(codes['moose'], micro, _elastic(), protocol='fast')
    process = instantiate_process(get_manager().get_runner(), builder)
    process.setup()
    averages = {'average_stress_xx': 0.07, 'average_strain_xx': 1e-3, 'average_strain_yy': -3.5e-4,
                'max_vonmises': 0.08}  # fmt: skip
    parameters = orm.Dict({'postprocessors': averages, 'csv_file': 'elasticity.csv'}).store()
    process.ctx.moose = types.SimpleNamespace(outputs=types.SimpleNamespace(output_parameters=parameters))
    fractions = (micro.area_fractions).tolist()
    rve = HandoffData(
        {name: {'value': value, 'unit': unit, 'std': None, 'note': 'written by hand (mock)'}
         for name, value, unit in (('youngs_modulus', stress_gpa / 1e-3 * 1e9, 'Pa'),
                                   ('poisson_ratio', 0.35, 'dimensionless'), ('c11_eff', 1e11, 'Pa'),
                                   ('c12_eff', 6e10, 'Pa'), ('c44_eff', 2e10, 'Pa'))},
        metadata={'grain_fractions': fractions},
    ).store()  # fmt: skip
    process.ctx.rve_elasticity_0 = types.SimpleNamespace(outputs=types.SimpleNamespace(elasticity=rve))
    exit_code = process.results()
    assert exit_code is not None and exit_code.status == FemWorkChain.exit_codes.ERROR_OUTSIDE_BOUNDS.status == 330
    assert f'E_eff = {stress_gpa / 1e-3:.4g} GPa lies outside the Voigt-Reuss bounds' in exit_code.message
    assert 'mechanics' not in process.outputs and 'stress_map' not in process.outputs
    voigt, reuss = youngs_bounds(108.2, 61.3, 28.5, micro.euler_angles, fractions)
    assert f'[{reuss:.4g}, {voigt:.4g}]' in exit_code.message
    (summary,) = [link.node for link in rve.base.links.get_outgoing(link_type=LinkType.INPUT_CALC).all()]
    assert summary.process_label == 'fem_summary'
    assert summary.outputs.result.value('youngs_modulus', 'GPa') == pytest.approx(stress_gpa / 1e-3)
