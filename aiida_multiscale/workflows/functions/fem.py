"""The FEM rung's calcfunctions: the MOOSE input from the grain map and the Cij, the moduli, the stress map."""

from __future__ import annotations

import io

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from aiida_multiscale.data.handoff import HandoffData
from aiida_multiscale.data.microstructure import MicrostructureData
from aiida_multiscale.engines.moose.exodus import read_element_variables
from aiida_multiscale.engines.moose.solid_mechanics import STRESS_UNIT, build_elasticity_input, element_grain_map
from aiida_multiscale.physics import elasticity as mechanics
from aiida_multiscale.physics.units import factor
from aiida_multiscale.workflows.protocols.utils import load_protocol_file

__all__ = (
    'cubic_constants',
    'default_parameters',
    'fem_input',
    'fem_mechanics',
    'fem_stress_map',
    'parameters_with_defaults',
)


def default_parameters() -> dict:
    """Every key of the ``parameters`` input with its default: the protocol file's ``default_inputs.parameters``."""
    return load_protocol_file('fem')['default_inputs']['parameters']


def parameters_with_defaults(node: orm.Dict | dict | None) -> dict:
    """The ``parameters`` (a Dict, a dict or None) with the defaults filled in."""
    values = default_parameters()
    values.update(node.get_dict() if isinstance(node, orm.Dict) else (node or {}))
    return values


def cubic_constants(elastic: HandoffData, unit: str) -> tuple[float, float, float]:
    """``(c11, c12, c44)`` of ``elastic`` in ``unit``."""
    return tuple(elastic.value(name, unit) for name in ('c11', 'c12', 'c44'))


@calcfunction
def fem_input(microstructure: MicrostructureData, elastic: HandoffData, parameters: orm.Dict):
    """Render the MOOSE input and the per-element Euler angles (the graph shows which Cij and map they came from)."""
    values = parameters_with_defaults(parameters)
    model = build_elasticity_input(
        microstructure.grain_ids,
        microstructure.euler_angles,
        *cubic_constants(elastic, STRESS_UNIT),
        applied_strain=values['applied_strain'],
        mesh_scale=values['mesh_scale'],
        thickness=values['thickness'],
    )
    outputs = {'input_file': orm.SinglefileData(io.BytesIO(model.input_text.encode()), filename='elasticity.i')}
    for name, content in model.files.items():
        outputs['euler_angles'] = orm.SinglefileData(io.BytesIO(content), filename=name)
    return outputs


@calcfunction
def fem_mechanics(output_parameters: orm.Dict, microstructure: MicrostructureData, elastic: HandoffData):
    """E_eff, nu_eff and the stress concentration from the MOOSE averages; Voigt/Reuss/Hill of the same grains."""
    pps = output_parameters['postprocessors']
    stress = pps['average_stress_xx']  # in the model's STRESS_UNIT
    strain = pps['average_strain_xx']
    youngs = stress / strain * factor(STRESS_UNIT, 'Pa')
    poisson = -pps['average_strain_yy'] / strain
    concentration = pps['max_vonmises'] / stress
    # The bounds from the Cij as handed over (Pa): the averages are linear in the Cij, so no unit round trip.
    bounds = mechanics.voigt_reuss_hill(
        *cubic_constants(elastic, 'Pa'), microstructure.euler_angles, microstructure.area_fractions
    )
    n = microstructure.grain_count
    setup = f'{n} grains, thin 3-D slab, uniaxial tension along x by grips (MOOSE, ComputeElasticityTensorCP)'
    bound_note = f'{n} grains, area-weighted, loading along x; computed in Python from the rotated Cij (not MOOSE)'
    quantities = {
        'youngs_modulus': {
            'value': youngs,
            'unit': 'Pa',
            'std': None,
            'note': f'FEM <sigma_xx>/<eps_xx>, {setup}; discretisation error not estimated',
        },
        'poisson_ratio': {
            'value': poisson,
            'unit': 'dimensionless',
            'std': None,
            'note': f'FEM -<eps_yy>/<eps_xx> (in-plane), {setup}',
        },
        'youngs_modulus_voigt': {
            'value': bounds['youngs_modulus_voigt'],
            'unit': 'Pa',
            'std': None,
            'note': f'Voigt (uniform strain, upper bound), {bound_note}',
        },
        'youngs_modulus_reuss': {
            'value': bounds['youngs_modulus_reuss'],
            'unit': 'Pa',
            'std': None,
            'note': f'Reuss (uniform stress, lower bound), {bound_note}',
        },
        'youngs_modulus_hill': {
            'value': bounds['youngs_modulus_hill'],
            'unit': 'Pa',
            'std': None,
            'note': f'Hill (mean of Voigt and Reuss), {bound_note}',
        },
        'poisson_ratio_hill': {
            'value': bounds['poisson_ratio_hill'],
            'unit': 'dimensionless',
            'std': None,
            'note': f'Hill estimate of nu_xy, {bound_note}',
        },
        'stress_concentration': {
            'value': concentration,
            'unit': 'dimensionless',
            'std': None,
            'note': 'peak element von Mises stress / applied stress <sigma_xx>; mesh-dependent '
            '(grain-boundary triple points, grips)',
        },
    }
    return HandoffData(
        quantities,
        producer='fem_mechanics',
        from_scale='fem',
        to_scale='fem',
        metadata={'c11_c12_c44_GPa': list(cubic_constants(elastic, 'GPa')), 'grain_count': int(n)},
    )


@calcfunction
def fem_stress_map(exodus: orm.SinglefileData, microstructure: MicrostructureData, parameters: orm.Dict):
    """PNG of the von Mises stress over the applied stress, grain boundaries drawn on top."""
    import matplotlib

    matplotlib.use('Agg')
    from matplotlib import pyplot as plt

    with exodus.open(mode='rb') as handle:
        values = read_element_variables(handle.read(), ('vonmises', 'stress_xx'))
    vonmises, stress_xx = values['vonmises'], values['stress_xx']
    ny, nx = microstructure.grid_shape
    scale = parameters_with_defaults(parameters)['mesh_scale']
    nx_el, ny_el = max(1, round(nx * scale)), max(1, round(ny * scale))
    grains = element_grain_map(microstructure.grain_ids, nx_el, ny_el)
    ratio = (vonmises / stress_xx.mean()).reshape(ny_el, nx_el)
    lx, ly = (length * factor('m', 'um') for length in microstructure.domain_size)
    figure, axes = plt.subplots(figsize=(6, 5 * ly / lx + 0.5))
    image = axes.imshow(ratio, origin='lower', extent=(0, lx, 0, ly), cmap='inferno', interpolation='nearest')
    boundary = (grains != np.roll(grains, 1, axis=0)) | (grains != np.roll(grains, 1, axis=1))
    overlay = np.ma.masked_where(~boundary, np.ones_like(ratio))
    axes.imshow(
        overlay,
        origin='lower',
        extent=(0, lx, 0, ly),
        cmap='Greys',
        vmin=0,
        vmax=1,
        alpha=0.35,
        interpolation='nearest',
    )
    figure.colorbar(image, ax=axes, label='von Mises / applied stress')
    axes.set_xlabel('x (um), tension along x')
    axes.set_ylabel('y (um)')
    axes.set_title(f'{microstructure.grain_count} grains: peak {ratio.max():.3f} x applied stress')
    buffer = io.BytesIO()
    figure.savefig(buffer, format='png', dpi=100, bbox_inches='tight')
    plt.close(figure)
    buffer.seek(0)
    return orm.SinglefileData(buffer, filename='stress_map.png')
