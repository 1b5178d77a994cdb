"""Calcfunctions of the periodic RVE: its MOOSE input from a grain map and Cij, and the effective elastic constants."""

from __future__ import annotations

import io

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from aiida_multiscale.data.handoff import HandoffData
from aiida_multiscale.data.microstructure import MicrostructureData
from aiida_multiscale.engines.moose import rve
from aiida_multiscale.engines.moose.solid_mechanics import element_grain_map
from aiida_multiscale.physics.units import factor
from aiida_multiscale.workflows.functions.parameters import check_parameter_ranges, fill_defaults

__all__ = (
    'DEFAULT_PARAMETERS',
    'rve_effective_elasticity',
    'rve_elasticity_input',
    'rve_parameters',
    'validate_rve_parameters',
)

#: Every key of the ``parameters`` input with its default.  ``loading_axis``: the axis along which E and nu are
#: reported (nu with the next axis as the lateral one: y for x, z for y, x for z).
DEFAULT_PARAMETERS = {'applied_strain': 1.0e-3, 'mesh_scale': 1.0, 'layers': 1, 'loading_axis': 'x'}
_RANGES = {'applied_strain': (0.0, 0.01), 'mesh_scale': (0.0, 4.0), 'layers': (0, 8)}
_AXES = 'xyz'


def rve_parameters(node: orm.Dict | dict | None) -> dict:
    """The ``parameters`` (a Dict, a dict or None) with the defaults filled in."""
    return fill_defaults(node, DEFAULT_PARAMETERS)


def validate_rve_parameters(node, _=None) -> str | None:
    """Only known keys, each in its range (a port validator: returns the message, or None)."""
    if node is None:
        return None
    values = node.get_dict() if isinstance(node, orm.Dict) else dict(node)
    error = check_parameter_ranges(values, DEFAULT_PARAMETERS, _RANGES)
    if error:
        return error
    if 'layers' in values and values['layers'] != int(values['layers']):
        return f'parameters: layers = {values["layers"]!r} must be a whole number of elements'
    if values.get('loading_axis', 'x') not in tuple(_AXES):
        return f'parameters: loading_axis = {values["loading_axis"]!r} must be one of x, y, z'
    return None


@calcfunction
def rve_elasticity_input(microstructure: MicrostructureData, elastic: HandoffData, parameters: orm.Dict):
    """The RVE's MOOSE input and per-element Euler angles (the graph shows which Cij and grain map they came from)."""
    values = rve_parameters(parameters)
    constants = [elastic.value(name, rve.STRESS_UNIT) for name in ('c11', 'c12', 'c44')]
    model = rve.build_rve_input(
        microstructure.grain_ids,
        microstructure.euler_angles,
        *constants,
        applied_strain=values['applied_strain'],
        mesh_scale=values['mesh_scale'],
        layers=int(values['layers']),
    )
    outputs = {'input_file': orm.SinglefileData(io.BytesIO(model.input_text.encode()), filename='rve.i')}
    (name, content), *_ = model.files.items()
    outputs['euler_angles'] = orm.SinglefileData(io.BytesIO(content), filename=name)
    return outputs


@calcfunction
def rve_effective_elasticity(postprocessors: orm.ArrayData, microstructure: MicrostructureData, parameters: orm.Dict):
    """C_eff (6x6 Voigt, Pa) from the six load cases; its cubic projection, and E and nu along the loading axis."""
    values = rve_parameters(parameters)
    series = {name: postprocessors.get_array(name) for name in postprocessors.get_arraynames()}
    to_pa = factor(rve.STRESS_UNIT, 'Pa')
    stiffness = rve.effective_stiffness(series, values['applied_strain']) * to_pa
    asymmetry = float(np.max(np.abs(stiffness - stiffness.T)) / np.max(np.abs(stiffness)))
    stiffness = 0.5 * (stiffness + stiffness.T)  # exact C_eff is symmetric; the solver leaves round-off
    axis = _AXES.index(values['loading_axis'])
    lateral = (axis + 1) % 3
    youngs, poisson = rve.axial_moduli(stiffness, axis, lateral)
    cubic = rve.cubic_projection(stiffness)
    nx, ny, nz = rve.rve_mesh_shape(microstructure.grid_shape, values['mesh_scale'], int(values['layers']))
    # The grains' volume fractions in the mesh (not the map's, when mesh_scale != 1): the weights of any bound
    # computed for this C_eff.
    elements = element_grain_map(microstructure.grain_ids, nx, ny)
    fractions = np.bincount(elements.ravel(), minlength=microstructure.grain_count) / elements.size
    setup = (
        f'periodic RVE of {microstructure.grain_count} grains (columnar: the map extruded along z, periodic on all '
        f'faces), {nx} x {ny} x {nz} HEX8, six strain load cases by the homogenisation constraint (MOOSE); '
        'discretisation error not estimated'
    )
    lat = f'{_AXES[lateral]}{_AXES[axis]}'
    quantities = {
        'youngs_modulus': {
            'value': youngs,
            'unit': 'Pa',
            'std': None,
            'note': f'E along {_AXES[axis]} = 1/S_{2 * _AXES[axis]} of C_eff, {setup}',
        },
        'poisson_ratio': {
            'value': poisson,
            'unit': 'dimensionless',
            'std': None,
            'note': f'nu_{lat} = -S_{lat}/S_{2 * _AXES[axis]} of C_eff (lateral {_AXES[lateral]}), {setup}',
        },
    }
    for name in ('c11', 'c12', 'c44'):
        quantities[f'{name}_eff'] = {
            'value': cubic[name],
            'unit': 'Pa',
            'std': None,
            'note': f'cubic projection of C_eff in the sample axes (mean of the {name}-equivalent entries; largest '
            f'non-cubic part {cubic["cubic_deviation"]:.2g} of c11), {setup}',
        }
    result = HandoffData(
        quantities,
        producer='rve_effective_elasticity',
        from_scale='fem',
        to_scale='fem',
        metadata={
            'stiffness_voigt_pa': stiffness.tolist(),
            'stiffness_order': '11 22 33 23 13 12, engineering shear strains',
            'stiffness_asymmetry': asymmetry,
            'cubic_deviation': cubic['cubic_deviation'],
            'grain_count': int(microstructure.grain_count),
            'mesh': [nx, ny, nz],
            'grain_fractions': fractions.tolist(),
            'loading_axis': values['loading_axis'],
        },
    )
    matrix = orm.ArrayData()
    matrix.set_array('stiffness', stiffness)
    matrix.base.attributes.set('unit', 'Pa')
    matrix.base.attributes.set('order', 'Voigt 11 22 33 23 13 12, engineering shear strains')
    return {'elasticity': result, 'stiffness': matrix}
