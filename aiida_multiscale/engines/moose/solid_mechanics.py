"""Polycrystal linear elasticity in MOOSE: a thin 3-D slab of the grain map, cubic Cij rotated per element, tension.

Why these choices:

* A thin 3-D slab (one element through the thickness, free faces) rather than 2-D plane strain, which overestimates E
  (the out-of-plane constraint stiffens it, up to or beyond the Voigt bound).
* One block, per-element Euler angles read by ``PropertyReadFile`` (``read_type = element``, mesh renumbering off) and
  applied by ``ComputeElasticityTensorCP``: it scales to thousands of grains, and it applies ``g^T``, the
  crystal -> sample map of Bunge angles, so angles from MicrostructureData go in unchanged.
* Uniaxial tension by prescribed displacement between two grips (``u_x = 0`` at x = 0, ``u_x = eps L`` at x = L), with
  only the rigid-body modes pinned (two nodes): a homogeneous anisotropic crystal can then shear freely, so the
  solution is exactly uniaxial stress and E equals the directional modulus.  Rollers on three faces would not allow
  that and overestimate E of a rotated crystal.
* Lengths are in pixels (elastic results do not depend on the absolute size) and stresses in GPa, which keeps the
  linear system well scaled; PETSc's own serial LU solves it (no hypre or MUMPS in the pip build).

Averages: ``<sigma_xx>`` over the volume equals the grip force over the section, and ``<eps_xx>`` the applied strain,
so ``E_eff = <sigma_xx> / <eps_xx>`` and ``nu_eff = -<eps_yy> / <eps_xx>``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from aiida_multiscale.engines.moose.hit import render_hit
from aiida_multiscale.physics.elasticity import born_stability_violations

__all__ = ('FILE_BASE', 'STRESS_UNIT', 'ElasticityModel', 'build_elasticity_input', 'element_grain_map')

EULER_FILE = 'euler_angles.csv'
FILE_BASE = 'elasticity'
#: The stress unit of the model: the elastic constants go in, and the stresses come out, in it.
STRESS_UNIT = 'GPa'


@dataclasses.dataclass
class ElasticityModel:
    """A rendered MOOSE input with the files it needs and what the results mean."""

    input_text: str
    files: dict[str, bytes]
    element_grains: np.ndarray  # (ny_el, nx_el) grain id of every element (row j = y)
    applied_strain: float
    stress_unit: str = STRESS_UNIT


def element_grain_map(grain_ids: np.ndarray, nx: int, ny: int) -> np.ndarray:
    """Grain of each element of an ``nx`` x ``ny`` mesh over the map: the pixel under the element centre."""
    grain_ids = np.asarray(grain_ids)
    py, px = grain_ids.shape
    cols = np.minimum(((np.arange(nx) + 0.5) * px / nx).astype(int), px - 1)
    rows = np.minimum(((np.arange(ny) + 0.5) * py / ny).astype(int), py - 1)
    return grain_ids[np.ix_(rows, cols)]


def build_elasticity_input(
    grain_ids,
    euler_angles,
    c11: float,
    c12: float,
    c44: float,
    *,
    applied_strain: float = 1e-3,
    mesh_scale: float = 1.0,
    thickness: float = 1.0,
) -> ElasticityModel:
    """Render the uniaxial-tension input for a grain map.

    :param grain_ids: ``(ny, nx)`` grain id per pixel (MicrostructureData.grain_ids).
    :param euler_angles: ``(n_grains, 3)`` Bunge angles in degrees, crystal -> sample.
    :param c11, c12, c44: cubic elastic constants in GPa.
    :param applied_strain: engineering strain along x imposed by the grips (small: linear elasticity).
    :param mesh_scale: elements per pixel along x and y (e.g. 0.5 coarsens a 100x100 map to 50x50 elements).
    :param thickness: slab thickness in pixels (one element through it).
    """
    errors = born_stability_violations(c11, c12, c44)
    if errors:
        raise ValueError('elastic constants are not Born-stable: ' + '; '.join(errors))
    if not 0 < applied_strain <= 0.05:
        raise ValueError(f'applied_strain must be in (0, 0.05] (small-strain elasticity), got {applied_strain}')
    if not 0 < thickness <= 10:
        raise ValueError(f'thickness must be in (0, 10] pixels (a thin slab), got {thickness}')
    grain_ids = np.asarray(grain_ids)
    euler = np.asarray(euler_angles, dtype=float).reshape(-1, 3)
    py, px = grain_ids.shape
    nx, ny = max(1, round(px * mesh_scale)), max(1, round(py * mesh_scale))
    if nx * ny > 250_000:
        raise ValueError(f'mesh of {nx} x {ny} elements is too large for this serial solver: lower mesh_scale')
    element_grains = element_grain_map(grain_ids, nx, ny)
    # libMesh numbers the elements of a generated box x fastest, then y: row-major (ny, nx) order, as in the map.
    per_element = euler[element_grains.ravel()]
    csv = '\n'.join(f'{a:.10g},{b:.10g},{c:.10g}' for a, b, c in per_element) + '\n'
    lx, ly, lz = float(px), float(py), float(thickness)

    stiffness = [c11, c12, c12, c11, c12, c11, c44, c44, c44]  # symmetric9: C11 C12 C13 C22 C23 C33 C44 C55 C66
    aux_variables = {
        name: {'order': 'CONSTANT', 'family': 'MONOMIAL'}
        for name in ('stress_xx', 'stress_yy', 'stress_xy', 'strain_xx', 'strain_yy', 'strain_zz', 'vonmises')
    }
    aux_kernels = {
        'vonmises': {
            'type': 'RankTwoScalarAux',
            'variable': 'vonmises',
            'rank_two_tensor': 'stress',
            'scalar_type': 'VonMisesStress',
            'execute_on': 'timestep_end',
        },
    }
    for name, tensor, (i, j) in (
        ('stress_xx', 'stress', (0, 0)),
        ('stress_yy', 'stress', (1, 1)),
        ('stress_xy', 'stress', (0, 1)),
        ('strain_xx', 'total_strain', (0, 0)),
        ('strain_yy', 'total_strain', (1, 1)),
        ('strain_zz', 'total_strain', (2, 2)),
    ):
        aux_kernels[name] = {
            'type': 'RankTwoAux',
            'variable': name,
            'rank_two_tensor': tensor,
            'index_i': i,
            'index_j': j,
            'execute_on': 'timestep_end',
        }
    postprocessors = {
        f'average_{name}': {'type': 'ElementAverageValue', 'variable': name}
        for name in ('stress_xx', 'stress_yy', 'strain_xx', 'strain_yy', 'strain_zz')
    }
    postprocessors['max_vonmises'] = {'type': 'ElementExtremeValue', 'variable': 'vonmises', 'value_type': 'max'}
    postprocessors['average_vonmises'] = {'type': 'ElementAverageValue', 'variable': 'vonmises'}

    blocks = {
        'GlobalParams': {'displacements': ['disp_x', 'disp_y', 'disp_z']},
        'Mesh': {
            'box': {
                'type': 'GeneratedMeshGenerator',
                'dim': 3,
                'nx': nx,
                'ny': ny,
                'nz': 1,
                'xmax': lx,
                'ymax': ly,
                'zmax': lz,
                'elem_type': 'HEX8',
            },
            'pin_origin': {
                'type': 'ExtraNodesetGenerator',
                'input': 'box',
                'new_boundary': 'pin_origin',
                'coord': [0.0, 0.0, 0.0],
            },
            'pin_top': {
                'type': 'ExtraNodesetGenerator',
                'input': 'pin_origin',
                'new_boundary': 'pin_top',
                'coord': [0.0, 0.0, lz],
            },
            'allow_renumbering': False,
        },
        'Variables': {'disp_x': {}, 'disp_y': {}, 'disp_z': {}},
        'Kernels': {
            f'stress_{axis}': {'type': 'StressDivergenceTensors', 'variable': f'disp_{axis}', 'component': index}
            for index, axis in enumerate('xyz')
        },
        'AuxVariables': aux_variables,
        'AuxKernels': aux_kernels,
        'UserObjects': {
            'euler_angles': {
                'type': 'PropertyReadFile',
                'prop_file_name': EULER_FILE,
                'read_type': 'element',
                'nprop': 3,
            },
        },
        'Materials': {
            'elasticity': {
                'type': 'ComputeElasticityTensorCP',
                'C_ijkl': stiffness,
                'fill_method': 'symmetric9',
                'read_prop_user_object': 'euler_angles',
            },
            'strain': {'type': 'ComputeSmallStrain'},
            'stress': {'type': 'ComputeLinearElasticStress'},
        },
        'BCs': {
            'grip_left': {'type': 'DirichletBC', 'variable': 'disp_x', 'boundary': 'left', 'value': 0.0},
            'grip_right': {
                'type': 'DirichletBC',
                'variable': 'disp_x',
                'boundary': 'right',
                'value': applied_strain * lx,
            },
            'pin_y': {'type': 'DirichletBC', 'variable': 'disp_y', 'boundary': ['pin_origin', 'pin_top'], 'value': 0.0},
            'pin_z': {'type': 'DirichletBC', 'variable': 'disp_z', 'boundary': 'pin_origin', 'value': 0.0},
        },
        'Postprocessors': postprocessors,
        'Executioner': {
            'type': 'Steady',
            'solve_type': 'NEWTON',
            'petsc_options_iname': ['-pc_type', '-pc_factor_mat_ordering_type'],
            'petsc_options_value': ['lu', 'nd'],
            'nl_rel_tol': 1e-10,
            'nl_abs_tol': 1e-12,
            'l_tol': 1e-10,
        },
        'Outputs': {'file_base': FILE_BASE, 'csv': True, 'exodus': True},
    }
    return ElasticityModel(render_hit(blocks), {EULER_FILE: csv.encode()}, element_grains, applied_strain)
